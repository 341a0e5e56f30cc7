"""The hooks of each probe family: which tracepoints bpf/<family>.bpf.c attaches.

The C program for tracepoint ``cat:event`` is ``TRACEPOINT_PROBE(cat, event)`` (for the hooks in
RAW_TRACEPOINTS ``RAW_TRACEPOINT_PROBE(event)``) and is compiled only when the loader passes
``-DTP_<cat>__<event>`` (the tracepoint exists on this kernel), so a missing tracepoint costs its
hook, never the whole load.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events.types import COMPAT_SYSCALLS_X86_64


def _sys(*names: str) -> tuple[str, ...]:
    out: list[str] = []
    for n in names:
        out += [f"syscalls:sys_enter_{n}", f"syscalls:sys_exit_{n}"]
    return tuple(out)


#: the generic hooks for system calls with no tracepoint of their own (see GENERIC_FOR)
RAW_SYSCALLS = ("raw_syscalls:sys_enter",)
#: hooks attached as raw tracepoints (``RAW_TRACEPOINT_PROBE(event)``, the program gets the
#: tracepoint's own arguments): a perf tracepoint on raw_syscalls:sys_enter would build a trace
#: record for every system call of the machine before the program runs
RAW_TRACEPOINTS = frozenset(RAW_SYSCALLS)
#: the generic hooks stand in for these tracepoints: attached only when they are missing
GENERIC_FOR = ("syscalls:sys_enter_init_module", "syscalls:sys_enter_finit_module")
#: syscall numbers the generic hooks filter on, per machine (init_module, finit_module)
MODULE_SYSCALLS = {"x86_64": (175, 313), "aarch64": (105, 273)}
#: the 32-bit system calls the generic hook reports, per machine (events/types.py says which)
COMPAT_SYSCALLS: dict[str, dict[int, str]] = {"x86_64": COMPAT_SYSCALLS_X86_64}
#: entry hooks the raw sys_enter program takes by the call's 64-bit number instead, per machine
#: (it runs on every system call there anyway, for the 32-bit calls): their tracepoints are
#: compiled but left detached (bpf/priv.bpf.c dispatch_entry); the exits stay tracepoints
DISPATCHED: dict[str, dict[str, int]] = {
    "x86_64": {"syscalls:sys_enter_openat": 257, "syscalls:sys_enter_open": 2,
               "syscalls:sys_enter_creat": 85, "syscalls:sys_enter_write": 1,
               "syscalls:sys_enter_writev": 20, "syscalls:sys_enter_pwrite64": 18,
               "syscalls:sys_enter_close": 3, "syscalls:sys_enter_connect": 42},
}

FAMILIES: dict[str, tuple[str, ...]] = {
    "exec": _sys("execve", "execveat") + ("sched:sched_process_exec",),
    "proc": (
        "task:task_newtask",
        "syscalls:sys_enter_exit_group",
        "syscalls:sys_enter_exit",
        "signal:signal_deliver",
        "sched:sched_process_exit",
    ),
    "net": _sys("connect", "dup2", "dup3", "dup", "fcntl", "accept", "accept4", "bind", "listen",
                "pidfd_open", "pidfd_getfd", "recvmsg"),
    "io": _sys("write", "writev", "sendto", "sendmsg", "pwrite64", "pwritev", "pwritev2",
               "sendfile64", "splice", "copy_file_range")
    + ("syscalls:sys_enter_close", "syscalls:sys_enter_mmap")
    + _sys("sendmmsg"),
    "file": _sys("openat", "openat2", "open", "creat", "rename", "renameat", "renameat2", "unlink",
                 "unlinkat", "chmod", "fchmodat", "fchmodat2", "fchmod", "link", "linkat",
                 "symlink", "symlinkat", "chdir", "fchdir", "mknod", "mknodat", "utimensat",
                 "truncate", "ftruncate", "chown", "lchown", "fchownat", "fchown"),
    "priv": _sys("ptrace", "mount", "unshare", "setns", "init_module", "finit_module",
                 "io_uring_setup", "io_uring_register", "memfd_create", "setuid",
                 "process_vm_readv", "process_vm_writev", "setxattr", "lsetxattr", "fsetxattr",
                 "bpf", "open_by_handle_at", "name_to_handle_at", "fsopen", "fsmount", "move_mount",
                 "open_tree", "pivot_root", "chroot", "setresuid", "setreuid", "userfaultfd",
                 "setgid", "setresgid", "setregid", "capset", "prctl")
    + RAW_SYSCALLS,
    "uring": ("io_uring:io_uring_submit_req",),
    "pipe": _sys("pipe", "pipe2", "socketpair", "ioctl"),
}

#: what each family is for, shown by `doctor`
PURPOSE: dict[str, str] = {
    "exec": "program execution (path, argv, failures, memfd/fd execs)",
    "proc": "fork/exit: process tree and exit codes",
    "net": "connect, accept, bind, listen; sockets dup'ed onto stdio (pidfd_getfd and fds "
           "received over unix sockets too)",
    "io": "bytes written to files (every write path, mmap) and sent on sockets",
    "file": "write-opens, sensitive reads, rename, unlink, chmod, chown, truncate, link, "
            "symlink, chdir, chosen file times (utimensat)",
    "priv": "ptrace, mount (new API too), namespaces, chroot, modules (raw_syscalls if needed), "
            "32-bit system calls (raw sys_enter, x86-64), bpf, file handles, io_uring, memfd, "
            "setuid, process_vm_*, /proc/PID/mem, file capabilities, prctl(PR_SET_NAME)",
    "uring": "io_uring submissions by opcode (connect, accept, open, write...)",
    "pipe": "pipe and pty ends (pipe2, TIOCGPTPEER): who holds which end, for relayed shells; "
            "fds a seccomp supervisor installs in another process (SECCOMP_IOCTL_NOTIF_ADDFD)",
}


@dataclass(frozen=True, slots=True)
class Hook:
    family: str
    tracepoint: str        # "cat:event"

    @property
    def category(self) -> str:
        return self.tracepoint.split(":", 1)[0]

    @property
    def event(self) -> str:
        return self.tracepoint.split(":", 1)[1]

    @property
    def raw(self) -> bool:
        """Attached as a raw tracepoint (by its event name alone)."""
        return self.tracepoint in RAW_TRACEPOINTS

    @property
    def fn_name(self) -> str:
        if self.raw:
            return f"raw_tracepoint__{self.event}"
        return f"tracepoint__{self.category}__{self.event}"

    @property
    def define(self) -> str:
        return f"-DTP_{self.category}__{self.event}=1"


def hooks(families: tuple[str, ...] | list[str] | None = None) -> list[Hook]:
    names = list(FAMILIES) if families is None else list(families)
    return [Hook(f, tp) for f in names for tp in FAMILIES[f]]
