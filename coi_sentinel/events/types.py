"""Event type numbers and flag bits: the Python side of bpf/include/events.h.

The numbers are part of the trace format. tests/unit/test_struct_mirrors.py parses events.h
and fails when a number or flag here differs from the C.
"""

from __future__ import annotations

import enum
import functools


class EventType(enum.IntEnum):
    EXEC = 1
    FORK = 2
    EXIT = 3
    CONNECT = 4
    DUP = 5
    NET_SEND = 6
    FILE_OPEN = 7
    FILE_WRITE = 8
    RENAME = 9
    UNLINK = 10
    CHMOD = 11
    PRIV = 12
    CONNECT_REPEAT = 13
    ACCEPT = 14
    BIND = 15
    LISTEN = 16
    URING = 17
    LINK = 18
    CHDIR = 19
    MMAP_WRITE = 20
    CHAN = 21
    UTIME = 22

    @functools.cached_property
    def label(self) -> str:
        """The name used in JSON (``"exec"``, ``"file_open"``...); computed once per member
        (every event is counted and written under it)."""
        return self.name.lower()


EVT_MAX = 64
EVENT_TYPE_BY_LABEL = {t.label: t for t in EventType}


class PrivOp(enum.IntEnum):
    PTRACE = 1
    MOUNT = 2
    UNSHARE = 3
    SETNS = 4
    INIT_MODULE = 5
    FINIT_MODULE = 6
    IO_URING_SETUP = 7
    MEMFD_CREATE = 8
    SETUID = 9
    BPF = 10
    PROCESS_VM_READV = 11
    PROCESS_VM_WRITEV = 12
    PROC_MEM_OPEN = 13
    SET_FILE_CAP = 14
    IO_URING_REGISTER = 15
    PIDFD_GETFD = 16
    OPEN_BY_HANDLE_AT = 17
    NAME_TO_HANDLE_AT = 18
    FSOPEN = 19
    FSMOUNT = 20
    MOVE_MOUNT = 21
    OPEN_TREE = 22
    PIVOT_ROOT = 23
    CHROOT = 24
    SETRESUID = 25
    SETREUID = 26
    USERFAULTFD = 27
    SETGID = 28
    SETRESGID = 29
    SETREGID = 30
    CAPSET = 31
    SCM_RIGHTS = 32
    CHOWN = 33
    COMPAT_SYSCALL = 34
    SECCOMP_ADDFD = 35
    SET_NAME = 36


# exec_event.flags
EXEC_ARGS_TRUNCATED = 1 << 0
EXEC_FILENAME_TRUNCATED = 1 << 1
EXEC_VIA_FD = 1 << 2
EXEC_FROM_MEMFD = 1 << 3
EXEC_ARGS_FROM_CALLER = 1 << 4
EXEC_KILLED = 1 << 5
EXEC_FROM_TMPFILE = 1 << 6
EXEC_UNLINKED = 1 << 7
EXEC_STDIO_SOCKET = 1 << 8

# connect_event.flags
CONNECT_KILLED = 1 << 0
CONNECT_FASTOPEN = 1 << 1
CONNECT_SENDTO = 1 << 2

# sock_info.flags
SOCK_ACCEPTED = 1 << 0
SOCK_LOCAL_ADDR = 1 << 1

# uring_event.flags
URING_KILLED = 1 << 0
URING_SQPOLL = 1 << 1

# rename_event.flags of a link event
LINK_SYMLINK = 1 << 16

# kill policy (kill_cfg) and reasons (kills)
KILL_MEMFD_EXEC = 1 << 0
KILL_BLOCKED_CONNECT = 1 << 1
KILL_SHELL_SOCKET = 1 << 2
KILL_URING_CONNECT = 1 << 3
KILL_UNLINKED_EXEC = 1 << 4
KILL_COMPAT_SYSCALL = 1 << 5
KILL_REASONS = {0: "memfd_exec", 1: "blocked_connect", 2: "shell_socket", 3: "uring_connect",
                4: "unlinked_exec", 5: "compat_syscall"}
KILL_REASON_MAX = 8

# priv_event.arg1 of op compat_syscall
COMPAT_KILLED = 1 << 0
COMPAT_X32 = 1 << 1

#: 32-bit (i386) system calls the generic raw sys_enter hook reports on x86-64, by their 32-bit
#: number (PrivOp.COMPAT_SYSCALL): no syscalls:* tracepoint sees a 32-bit call (`int $0x80`
#: from a 64-bit program included), so a socket made, connected and dup'ed onto stdin that way
#: would reach a shell unseen. Left out are the numbers whose 64-bit meaning is a frequent call,
#: which would all pay the scope and register test: open (5: fstat), creat (8: lseek), write
#: (4: stat), execve (11: munmap; the exec is seen by sched_process_exec anyway), mount (21:
#: access), chroot (61: wait4), pivot_root (217: getdents64). bpf/priv.bpf.c says how a 32-bit
#: call is told apart.
COMPAT_SYSCALLS_X86_64: dict[int, str] = {
    102: "socketcall", 359: "socket", 360: "socketpair", 361: "bind", 362: "connect",
    363: "listen", 364: "accept4", 369: "sendto", 370: "sendmsg", 371: "recvfrom",
    372: "recvmsg", 345: "sendmmsg", 41: "dup", 63: "dup2", 330: "dup3", 295: "openat",
    437: "openat2", 26: "ptrace", 356: "memfd_create", 358: "execveat", 347: "process_vm_readv",
    348: "process_vm_writev", 128: "init_module", 350: "finit_module", 213: "setuid32",
    208: "setresuid32", 203: "setreuid32", 310: "unshare", 346: "setns", 438: "pidfd_getfd",
    425: "io_uring_setup", 427: "io_uring_register", 357: "bpf",
}

#: ring_retries slots (enum ring_retry): refused once and granted on the retry, per ring, and
#: high-priority records the bulk ring took after the high-priority ring refused them twice
RING_RETRIES = {0: "hi", 1: "bulk", 2: "hi_via_bulk"}
RETRY_KINDS = 3

#: IORING_OP_* names of the opcodes uring.bpf.c reports
URING_OPS = {2: "writev", 5: "write_fixed", 9: "sendmsg", 13: "accept", 16: "connect",
             18: "openat", 23: "write", 26: "send", 28: "openat2", 30: "splice", 33: "tee",
             35: "renameat", 36: "unlinkat", 38: "symlinkat", 39: "linkat", 41: "fsetxattr",
             42: "setxattr", 45: "socket", 46: "uring_cmd", 47: "send_zc", 48: "sendmsg_zc",
             55: "ftruncate", 56: "bind", 57: "listen", 61: "writev_fixed"}

# file kinds
FILE_KIND_WRITE = 1
FILE_KIND_SENSITIVE = 2
FILE_KIND_TRUNCATE = 3      # truncate(path) / ftruncate: sent as an O_WRONLY|O_TRUNC open
FILE_KIND_FAILED = 0x100
FILE_KIND_LABELS = {FILE_KIND_WRITE: "write", FILE_KIND_SENSITIVE: "sensitive",
                    FILE_KIND_TRUNCATE: "truncate"}

# utime_event.how
UTIME_SET_ATIME = 1 << 0
UTIME_SET_MTIME = 1 << 1
UTIME_BACKDATED = 1 << 2

# dup_event.flags
DUP_OLDFD_SOCKET = 1 << 0
DUP_KILLED = 1 << 1
DUP_FD_KINDS = 1 << 2

# chan_info.kind, chan_info.end, chan_event.op (pipes, fifos, ptys: pipe.bpf.c)
CHAN_PIPE = 1
CHAN_FIFO = 2
CHAN_PTY = 3
CHAN_SOCKPAIR = 4
CHAN_KIND_LABELS = {CHAN_PIPE: "pipe", CHAN_FIFO: "fifo", CHAN_PTY: "pty", CHAN_SOCKPAIR: "socketpair"}
CHAN_READ = 1
CHAN_WRITE = 2
CHAN_RDWR = 3
CHAN_MASTER = 4
CHAN_SLAVE = 5
CHAN_END_LABELS = {CHAN_READ: "read", CHAN_WRITE: "write", CHAN_RDWR: "rdwr", CHAN_MASTER: "master",
                   CHAN_SLAVE: "slave"}
CHAN_OP_PIPE = 1
CHAN_OP_OPEN = 2
CHAN_OP_PTPEER = 3
CHAN_OP_SOCKPAIR = 4
CHAN_OP_LABELS = {CHAN_OP_PIPE: "pipe", CHAN_OP_OPEN: "open", CHAN_OP_PTPEER: "ptpeer",
                  CHAN_OP_SOCKPAIR: "socketpair"}

# scope_cfg.mode
SCOPE_NONE = 0
SCOPE_LISTED = 1
SCOPE_ALL = 2

# address families
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
FAMILY_LABELS = {AF_UNIX: "unix", AF_INET: "inet", AF_INET6: "inet6"}

# sizes
COMM_LEN = 16
PATH_LEN = 256
ARGS_BUF = 1024
UNIX_PATH_LEN = 108
