"""The field catalogue: every name a condition, an output or a key may use, in one place.

A field is defined by a Python expression *per event type* over the names ``ev`` (the event),
``p`` (the acting :class:`~coi_sentinel.events.proctable.Process`, already updated with the
event) and ``E`` (the :class:`~coi_sentinel.rules.context.EvalContext`: process table, sessions).
An event type missing from ``exprs`` means the field has no value for that event: comparisons
with it are false there, ``exists`` is false, and the compiler drops the clause at compile time.

Placeholders in an expression, filled by the compiler:

- ``{f:NAME}`` - the expression of another field for the same event type (computed once);
- ``{anc}`` - the ancestors of ``p``, parent first (looked up once per event);
- ``{ses}`` - the session of the event (a :class:`~coi_sentinel.rules.context.SessionInfo`);
- ``{n}`` - the index of an indexed field (``proc.aname[2]``), a non-negative integer.

The expressions and placeholders are this module's own text; nothing from a rule file ever
becomes code (rule values are bound as constants by the compiler). ``coi-sentinel rules
fields`` prints :data:`FIELDS`; docs/rules.md lists it too.
"""

from __future__ import annotations

import enum
import errno
import functools
import posixpath
import pwd
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..events.proctable import dup_socket
from ..events.types import EventType

T = EventType
ALL = tuple(EventType)
ERRNO_TYPES = (T.EXEC, T.CONNECT, T.CONNECT_REPEAT, T.DUP, T.FILE_OPEN, T.RENAME, T.UNLINK, T.CHMOD,
               T.ACCEPT, T.BIND, T.LISTEN, T.LINK, T.CHDIR,
               T.PRIV, T.CHAN, T.UTIME)
_SOCK_TYPES = (T.CONNECT, T.CONNECT_REPEAT, T.NET_SEND, T.ACCEPT)   # carrying family/daddr/dport
_LOCAL_TYPES = (T.BIND, T.LISTEN)                                   # carrying family/laddr/lport
PATH_TYPES = (T.FILE_OPEN, T.FILE_WRITE, T.UNLINK, T.CHMOD, T.RENAME, T.LINK, T.UTIME)

#: program names (basename of the executable, version suffix removed) counted as shells
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "ash", "fish", "tcsh",
                    "csh", "busybox", "rbash", "yash", "oksh", "elvish", "nu", "xonsh"})
#: ... and as script interpreters
INTERPRETERS = frozenset({"python", "perl", "ruby", "node", "nodejs", "php", "lua", "luajit",
                          "tclsh", "wish", "bun", "deno", "pwsh", "irb", "jshell", "Rscript",
                          "guile", "awk", "gawk", "mawk", "nawk", "expect", "socat", "ncat"})
_VERSION_SUFFIX = re.compile(r"[-\d.]+$")


class FieldType(enum.Enum):
    STR = "string"
    INT = "number"
    BOOL = "bool"
    IP = "address"


@dataclass(frozen=True, slots=True, eq=False)
class FieldDef:
    """One field (compared and hashed by identity: each exists once, in :data:`FIELDS`)."""

    name: str
    type: FieldType
    doc: str
    exprs: Mapping[EventType, str]
    #: the value may be None at run time where the field is defined (no parent, no session...)
    nullable: bool = False
    #: "no", "optional" or "required": whether the name takes an index ``[n]``
    indexed: str = "no"
    #: expressions of the indexed form (``{n}`` placeholder); default: ``exprs``
    index_exprs: Mapping[EventType, str] = field(default_factory=dict)
    #: the unindexed form is a tuple of values: an operator holds if it holds for any of them
    multi: bool = False
    #: worth computing once per event when several rules use it
    costly: bool = False

    @property
    def category(self) -> str:
        return self.name.split(".", 1)[0]

    def available(self, etype: EventType) -> bool:
        return etype in self.exprs

    def expr(self, etype: EventType, index: int | None) -> str | None:
        if index is None:
            return self.exprs.get(etype)
        exprs = self.index_exprs or self.exprs
        text = exprs.get(etype)
        return None if text is None else text.replace("{n}", str(index))

    def value_type(self, index: int | None) -> str:
        """Type name for docs: ``string``, ``number``... or ``list of string``."""
        if self.multi and index is None:
            return f"list of {self.type.value}"
        return self.type.value


def _on(types: tuple[EventType, ...], expr: str) -> dict[EventType, str]:
    return {t: expr for t in types}


def _exec_or(exec_expr: str, other: str) -> dict[EventType, str]:
    d = _on(ALL, other)
    d[T.EXEC] = exec_expr
    return d


S, I, B, IP = FieldType.STR, FieldType.INT, FieldType.BOOL, FieldType.IP
_PATH = {T.FILE_OPEN: "ev.path", T.FILE_WRITE: "ev.path", T.UNLINK: "ev.path",
         T.CHMOD: "(ev.path or None)", T.RENAME: "ev.newpath", T.LINK: "ev.path",
         T.UTIME: "(ev.path or None)"}


def _ancestor(attr: str, doc: str, ftype: FieldType, self_field: str) -> FieldDef:
    """proc.a<attr>: indexed ancestor attribute; [0] is the process itself, [1] its parent."""
    return FieldDef(
        f"proc.a{attr}", ftype, doc + " ([0] the process itself, [1] its parent, [2] the "
        "grandparent...; without an index: any ancestor, parent first)",
        _on(ALL, f"_anc_all({{anc}}, {attr!r})"), nullable=True, indexed="optional", multi=True,
        index_exprs=_on(ALL, f"_anc_nth({{anc}}, {{n}}, {attr!r}, {{f:{self_field}}})"))


_FIELD_LIST: tuple[FieldDef, ...] = (
    # ---- evt: the event itself
    FieldDef("evt.type", S, "event type: " + ", ".join(t.label for t in ALL), {t: repr(t.label) for t in ALL}),
    FieldDef("evt.time", I, "kernel monotonic time of the event, ns", _on(ALL, "ev.ts_ns")),
    FieldDef("evt.errno", I, "errno of the syscall, 0 on success (EINPROGRESS 115 for a "
             "non-blocking connect)", _on(ERRNO_TYPES, "ev.errno")),
    FieldDef("evt.failed", B, "the syscall failed", {**_on(ERRNO_TYPES, "(ev.errno != 0)"),
                                                      T.FILE_WRITE: "ev.failed"}),
    FieldDef("evt.killed", B, "the kernel's kill policy sent SIGKILL at the hook, before the call "
             "returned (exec, connect, dup, uring, priv compat_syscall)",
             {T.EXEC: "ev.killed", T.CONNECT: "ev.killed", T.DUP: "ev.killed", T.URING: "ev.killed",
              T.PRIV: "ev.killed"}),
    FieldDef("evt.res", S, "result of the syscall: SUCCESS or the errno name (ENOENT...), as Falco "
             "writes it", _on(ERRNO_TYPES, "_errno_name(ev.errno)")),
    FieldDef("evt.rawres", I, "return value of the syscall where it failed: minus the errno, 0 on success",
             _on(ERRNO_TYPES, "(-ev.errno)")),
    FieldDef("evt.dir", S, "Falco's event direction: always '<' (events are taken at syscall exit)",
             _on(ALL, "'<'")),
    FieldDef("evt.is_open_read", B, "file_open: opened for reading (O_RDONLY or O_RDWR)",
             {T.FILE_OPEN: "((ev.flags & 3) != 1)"}),
    FieldDef("evt.is_open_write", B, "file_open: opened for writing (O_WRONLY or O_RDWR)",
             {T.FILE_OPEN: "((ev.flags & 3) != 0)"}),
    FieldDef("evt.exit_code", I, "exit code, -1 when killed by a signal", {T.EXIT: "ev.exit_code"}),
    FieldDef("evt.signal", I, "fatal signal number, 0 if none", {T.EXIT: "ev.signal"}),
    FieldDef("evt.child_pid", I, "pid of the new process", {T.FORK: "ev.child_pid"}),
    FieldDef("evt.clone_flags", I, "clone(2) flags", {T.FORK: "ev.clone_flags"}),

    # ---- proc: the acting process (on exec: the program being executed, even if it failed)
    FieldDef("proc.pid", I, "process id (tgid)", _on(ALL, "ev.pid")),
    FieldDef("proc.tid", I, "thread id", _on(ALL, "ev.tid")),
    FieldDef("proc.ppid", I, "parent process id (0 when unknown)", _on(ALL, "(p.ppid or ev.ppid)")),
    FieldDef("proc.comm", S, "kernel task name (15 characters, settable by the process)",
             _on(ALL, "ev.comm")),
    FieldDef("proc.exe", S, "executable path (on exec: the file being executed)",
             _exec_or("ev.filename", "(p.exe or None)"), nullable=True),
    FieldDef("proc.name", S, "basename of proc.exe (the comm when the exe is unknown)",
             _exec_or("_basename(ev.filename)", "p.name"), costly=True),
    FieldDef("proc.args", S, "arguments without argv[0], joined by spaces",
             _exec_or("' '.join(ev.argv[1:])", "' '.join(p.argv[1:])"), costly=True),
    FieldDef("proc.argc", I, "number of arguments including argv[0]",
             _exec_or("ev.argc", "len(p.argv)")),
    FieldDef("proc.argv", S, "argv[n]; without an index: any argument", _exec_or("ev.argv", "p.argv"),
             nullable=True, indexed="optional", multi=True,
             index_exprs=_exec_or("_nth(ev.argv, {n})", "_nth(p.argv, {n})")),
    FieldDef("proc.script_name", S, "last component of the file a program runs as code: argv[1], "
             "the script a shell or interpreter is given (bash x.sh, sh ./x.sh, python3 /tmp/x.py: "
             "x.sh, x.sh, x.py); for make and awk the file of -f (make -s -f .cache/mk: mk; "
             "awk -f x.awk), none without one; none without argv[1]",
             _exec_or("_script_name(ev.argv)", "_script_name(p.argv)"), nullable=True),
    FieldDef("proc.cmdline", S, "argv joined by spaces (the comm when argv is unknown)",
             _exec_or("(' '.join(ev.argv) or ev.comm)", "p.cmdline"), costly=True),
    FieldDef("proc.args_truncated", B, "the kernel cut the argument list", {T.EXEC: "ev.args_truncated"}),
    FieldDef("proc.exe_from_memfd", B, "the executable is a memfd (fileless execution)",
             _exec_or("ev.from_memfd", "p.exe.startswith('/memfd:')")),
    FieldDef("proc.exe_deleted", B, "the executable file was deleted",
             _exec_or("ev.deleted", "p.exe.endswith(' (deleted)')")),
    FieldDef("proc.exe_via_fd", B, "executed through a file descriptor (execveat, fexecve)",
             {T.EXEC: "ev.via_fd"}),
    FieldDef("proc.env", S, "exec: the dynamic loader's variables of the new program's environment, "
             "as NAME=value (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...); without an index: any",
             {T.EXEC: "ev.env"}, nullable=True, indexed="optional", multi=True,
             index_exprs={T.EXEC: "_nth(ev.env, {n})"}),
    FieldDef("proc.ld_preload", S, "exec: LD_PRELOAD of the new program ('' when unset)",
             {T.EXEC: "ev.ld_preload"}),
    FieldDef("proc.is_shell", B, "proc.name is a shell (version suffix ignored; list in fields.py)",
             _on(ALL, "_is_shell({f:proc.name})"), costly=True),
    FieldDef("proc.is_interpreter", B, "proc.name is a script interpreter (python3.11, node, perl...)",
             _on(ALL, "_is_interpreter({f:proc.name})"), costly=True),
    FieldDef("proc.stdin_is_socket", B, "fd 0 is a socket", _on(ALL, "(0 in p.stdio_sockets)")),
    FieldDef("proc.stdout_is_socket", B, "fd 1 is a socket", _on(ALL, "(1 in p.stdio_sockets)")),
    FieldDef("proc.stderr_is_socket", B, "fd 2 is a socket", _on(ALL, "(2 in p.stdio_sockets)")),
    FieldDef("proc.has_outbound_socket", B, "the process or its parent connected an inet/inet6 "
             "socket to a non-loopback address (connect returned 0 or EINPROGRESS; a child "
             "inherits its parent's sockets)",
             _on(ALL, "(_outbound_sock(p) or _parent_outbound(E, p))"), costly=True),
    FieldDef("proc.stdio_net", B, "one of fds 0-2 is an inet/inet6 socket",
             _on(ALL, "(_stdio_sock(p) is not None)")),
    FieldDef("proc.stdio_dip", IP, "remote address of the network socket on fds 0-2",
             _on(ALL, "_stdio_field(p, 1)"), nullable=True),
    FieldDef("proc.stdio_dport", I, "remote port of the network socket on fds 0-2",
             _on(ALL, "_stdio_field(p, 2)"), nullable=True),
    FieldDef("proc.stdio_relay_net", B, "fds 0 and 1 are pipe, fifo or pty ends, and a live "
             "process that connected an inet/inet6 socket to a non-loopback address both feeds "
             "fd 0 and reads fd 1 through them (up to 3 processes away: cat f | sh -i | nc > f): "
             "the shell end of a relayed shell (nc, openssl with a fifo; socat with a pty)",
             _on(ALL, "(_relay_net(E, p) is not None)")),
    FieldDef("proc.feeds_shell", B, "the process is joined through pipes, fifos or ptys to a "
             "live shell or interpreter reading its program from stdin (sh -i, a bare sh) for "
             "which proc.stdio_relay_net holds: the network end of a relayed shell",
             _on(ALL, "(_fed_shell(E, p) is not None)")),
    FieldDef("proc.relay_peer", S, "the process at the other end: for proc.stdio_relay_net the "
             "network-connected one, else the shell proc.feeds_shell found",
             _on(ALL, "_relay_peer(E, p)"), nullable=True),
    FieldDef("proc.relay_peer_cmdline", S, "command line of proc.relay_peer",
             _on(ALL, "_relay_peer(E, p, 'cmdline')"), nullable=True),
    FieldDef("proc.pname", S, "name of the parent process", _on(ALL, "_anc_nth({anc}, 1, 'name', None)"),
             nullable=True, costly=True),
    FieldDef("proc.pexe", S, "executable of the parent process",
             _on(ALL, "_anc_nth({anc}, 1, 'exe', None)"), nullable=True),
    FieldDef("proc.pcmdline", S, "command line of the parent process",
             _on(ALL, "_anc_nth({anc}, 1, 'cmdline', None)"), nullable=True, costly=True),
    _ancestor("name", "name of an ancestor", S, "proc.name"),
    _ancestor("exe", "executable of an ancestor", S, "proc.exe"),
    _ancestor("cmdline", "command line of an ancestor", S, "proc.cmdline"),
    _ancestor("pid", "pid of an ancestor", I, "proc.pid"),

    # ---- user
    FieldDef("user.uid", I, "user id of the process", _on(ALL, "ev.uid")),
    FieldDef("user.name", S, "user name of user.uid in this host's user database (the uid as text "
             "when it has none)", _on(ALL, "_user_name(ev.uid)")),
    FieldDef("user.gid", I, "group id of the process", _on(ALL, "ev.gid")),
    FieldDef("user.is_root", B, "uid 0 (in the container's namespace view of the kernel: host uid)",
             _on(ALL, "(ev.uid == 0)")),

    # ---- container and session
    FieldDef("container.name", S, "container name, or 'host'", _on(ALL, "ev.container")),
    FieldDef("container.is_host", B, "the event is not from a container", _on(ALL, "(ev.container == 'host')")),
    FieldDef("container.scope_id", I, "container-level cgroup id", _on(ALL, "ev.scope_id")),
    FieldDef("container.cgroup_id", I, "leaf cgroup id", _on(ALL, "ev.cgroup_id")),
    FieldDef("container.live_procs", I, "processes alive in the container (its scope) after this "
             "event, as the event stream shows them: forked or seen, not exited",
             _on(ALL, "E.table.live(ev.scope_id)")),
    FieldDef("session.id", S, "coi-sentinel session id", _on(ALL, "{ses}.id"), nullable=True),
    FieldDef("session.tool", S, "agent tool of the session (claude, codex, shell...)",
             _on(ALL, "{ses}.tool"), nullable=True),
    FieldDef("session.network", S, "network mode of the session: restricted, allowlist, open",
             _on(ALL, "{ses}.network"), nullable=True),

    # ---- net: connect, dup of a socket, bytes sent
    FieldDef("net.family", S, "socket family: inet, inet6, unix",
             {**_on(_SOCK_TYPES, "ev.family"), T.DUP: "_dup_sock(ev, p)[0]"}, nullable=True),
    FieldDef("net.dip", IP, "remote IP address (inet and inet6 only)",
             {**_on(_SOCK_TYPES, "_ip(ev.family, ev.daddr)"), T.DUP: "_ip(*_dup_sock(ev, p)[:2])"},
             nullable=True),
    FieldDef("net.dport", I, "remote port (inet and inet6 only)",
             {**_on(_SOCK_TYPES, "_port(ev.family, ev.dport)"), T.DUP: "_port(*_dup_sock(ev, p)[::2])"},
             nullable=True),
    FieldDef("net.daddr", S, "remote address as text: IP, or the path of a unix socket ('@' abstract)",
             {**_on(_SOCK_TYPES, "(ev.daddr or None)"), T.DUP: "_dup_sock(ev, p)[1]"}, nullable=True),
    FieldDef("net.lport", I, "bind, listen: the local port (listen: 0 when the bind was not seen)",
             _on(_LOCAL_TYPES, "ev.lport")),
    FieldDef("net.laddr", S, "bind, listen: the local address ('' when not seen)",
             _on(_LOCAL_TYPES, "ev.laddr")),
    FieldDef("net.all_interfaces", B, "bind, listen: on every interface (0.0.0.0 or ::)",
             _on(_LOCAL_TYPES, "ev.all_interfaces")),
    FieldDef("net.uring_op", S, "uring: the io_uring operation (connect, accept, openat, write...)",
             {T.URING: "ev.op"}),
    FieldDef("net.connects", I, "connects the event stands for: 1 for connect and an io_uring "
             "connect (destination unknown), the count of a connect_repeat summary",
             {T.CONNECT: "1", T.CONNECT_REPEAT: "ev.count",
              T.URING: "(1 if ev.op == 'connect' else 0)"}),
    FieldDef("net.bytes_out", I, "bytes sent on the socket since its previous net_send event",
             {T.NET_SEND: "ev.bytes"}),
    FieldDef("net.send_calls", I, "send/write calls counted in net.bytes_out", {T.NET_SEND: "ev.calls"}),

    # ---- fd
    FieldDef("fd.num", I, "file descriptor of the event",
             {T.CONNECT: "ev.fd", T.NET_SEND: "ev.fd", T.FILE_OPEN: "ev.fd", T.CHMOD: "ev.fd"}),
    FieldDef("fd.oldfd", I, "dup: the descriptor copied", {T.DUP: "ev.oldfd"}),
    FieldDef("fd.newfd", I, "dup: the target descriptor (0, 1 or 2)", {T.DUP: "ev.newfd"}),
    FieldDef("fd.typechar", S, "Falco's descriptor type: f file, 4 IPv4, 6 IPv6, u unix socket",
             {**_on(PATH_TYPES, "'f'"), **_on(_SOCK_TYPES, "_fd_type(ev.family, 1)")}, nullable=True),
    FieldDef("fd.type", S, "Falco's descriptor type: file, ipv4, ipv6, unix",
             {**_on(PATH_TYPES, "'file'"), **_on(_SOCK_TYPES, "_fd_type(ev.family, 0)")}, nullable=True),
    FieldDef("fd.is_socket", B, "dup: the descriptor copied is a connected socket",
             {T.DUP: "(_dup_sock(ev, p)[0] is not None)"}),
    FieldDef("fd.kind", S, "dup: what the descriptor copied is as the kernel tracks it (socket, "
             "pipe, fifo, pty, socketpair, other; none in records from before fd kinds); chan: pipe, fifo, "
             "pty, socketpair",
             {T.DUP: "(ev.fd_kind or None)", T.CHAN: "ev.kind"}, nullable=True),
    FieldDef("fd.chan_end", S, "dup, chan: which end of the pipe (read, write), fifo (read, write, "
             "rdwr), pty (master, slave) or socketpair (rdwr)", {T.DUP: "(ev.chan_end or None)", T.CHAN: "ev.end"},
             nullable=True),

    # ---- file
    FieldDef("file.path", S, "path resolved against the cwd or dirfd (rename: the new path; link: the "
             "new name)",
             _PATH, nullable=True),
    FieldDef("file.oldpath", S, "rename: the old path; link: the existing path (symlink: its text)",
             {T.RENAME: "ev.oldpath", T.LINK: "ev.target"}),
    FieldDef("file.link_target", S, "link: the file the new name leads to, as a path (a symlink's "
             "relative text joined to the link's directory; one level: a target that is itself a "
             "link is not followed)", {T.LINK: "_link_target(ev.target, ev.path, ev.symlink)"}),
    FieldDef("file.name", S, "last component of file.path", _on(PATH_TYPES, "_basename({f:file.path})"),
             nullable=True, costly=True),
    FieldDef("file.dir", S, "file.path without its last component",
             _on(PATH_TYPES, "_dirname({f:file.path})"), nullable=True),
    FieldDef("file.kind", S, "file_open/file_write: 'write' (write intent), 'sensitive' (a read "
             "of a path in the sensitive set) or 'truncate' (truncate/ftruncate: no open, sent as "
             "the O_WRONLY|O_TRUNC open it amounts to)",
             {T.FILE_OPEN: "ev.kind", T.FILE_WRITE: "ev.kind"}),
    FieldDef("file.is_write", B, "opened with write intent (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), "
             "or truncated (file.kind truncate)",
             {T.FILE_OPEN: "(ev.kind != 'sensitive')", T.FILE_WRITE: "(ev.kind == 'write')"}),
    FieldDef("file.flags", I, "open(2) flags; rename/unlink flags",
             {T.FILE_OPEN: "ev.flags", T.RENAME: "ev.flags", T.UNLINK: "ev.flags"}),
    FieldDef("file.creates_new", B, "opened with O_CREAT|O_EXCL: the file did not exist (a copy "
             "or an extraction making it, not an edit of an existing one)",
             {T.FILE_OPEN: "((ev.flags & 0xc0) == 0xc0)"}),
    FieldDef("file.truncates", B, "opened with O_TRUNC: the file's content is thrown away",
             {T.FILE_OPEN: "((ev.flags & 0x200) != 0)"}),
    FieldDef("file.appends", B, "opened with O_APPEND: writes go to the end",
             {T.FILE_OPEN: "((ev.flags & 0x400) != 0)"}),
    FieldDef("file.mode", I, "creation mode of an open, new mode of a chmod",
             {T.FILE_OPEN: "ev.mode", T.CHMOD: "ev.mode"}),
    FieldDef("file.mode_octal", S, "file.mode in octal, like 04755 (for outputs)",
             {T.FILE_OPEN: "'0' + format(ev.mode, 'o')", T.CHMOD: "'0' + format(ev.mode, 'o')"}),
    FieldDef("file.mode_setuid", B, "chmod sets the setuid bit", {T.CHMOD: "ev.sets_setuid"}),
    FieldDef("file.mode_setgid", B, "chmod sets the setgid bit", {T.CHMOD: "ev.sets_setgid"}),
    FieldDef("file.mtime", I, "utime: the modification time set, in seconds (-1: not set)",
             {T.UTIME: "ev.mtime"}),
    FieldDef("file.atime", I, "utime: the access time set, in seconds (-1: not set)", {T.UTIME: "ev.atime"}),
    FieldDef("file.backdated", B, "utime: a time set lies more than an hour in the past",
             {T.UTIME: "ev.backdated"}),
    FieldDef("file.bytes", I, "file_write: bytes written since the previous summary",
             {T.FILE_WRITE: "ev.bytes"}),
    FieldDef("file.writes", I, "file_write: write calls since the previous summary",
             {T.FILE_WRITE: "ev.writes"}),
    FieldDef("file.opens", I, "file_write: opens since the previous summary", {T.FILE_WRITE: "ev.opens"}),
    FieldDef("file.proc_pid", I, "for a path under /proc/<pid>/: that pid (/proc/self: the process)",
             _on(PATH_TYPES, "_procfs_pid({f:file.path}, ev.pid)"), nullable=True),
    FieldDef("file.is_other_proc", B, "the path is under /proc/<pid>/ of another process",
             _on(PATH_TYPES, "_other_proc({f:file.path}, ev.pid, ev.tid)")),

    # ---- priv: ptrace, mount, unshare, setns, module loading, io_uring, memfd, setuid
    FieldDef("priv.op", S, "ptrace, mount, unshare, setns, init_module, finit_module, "
             "io_uring_setup, io_uring_register, memfd_create, setuid, bpf, process_vm_readv, "
             "process_vm_writev, proc_mem_open, set_file_cap, pidfd_getfd, open_by_handle_at, "
             "name_to_handle_at, fsopen, fsmount, move_mount, open_tree, pivot_root, chroot, "
             "setresuid, setreuid, userfaultfd, setgid, setresgid, setregid, capset, scm_rights, "
             "chown, compat_syscall (a 32-bit system call: priv.detail names it), seccomp_addfd "
             "(an fd installed in another process by a seccomp supervisor), set_name "
             "(prctl(PR_SET_NAME): priv.detail is the new name)",
             {T.PRIV: "ev.op"}),
    FieldDef("priv.arg0", I, "first argument (ptrace request, mount/unshare flags, setns fd, "
             "setuid uid, chown uid...)", {T.PRIV: "ev.arg0"}),
    FieldDef("priv.arg1", I, "second argument (ptrace pid, setns nstype, chown gid...)",
             {T.PRIV: "ev.arg1"}),
    FieldDef("priv.detail", S, "mount target, module parameters, memfd name, chown's path, "
             "the name a task gave itself (set_name)",
             {T.PRIV: "ev.detail"}),
    FieldDef("priv.ptrace_request", I, "ptrace: the request (16 ATTACH, 0x4206 SEIZE...)",
             {T.PRIV: "(ev.arg0 if ev.op == 'ptrace' else None)"}, nullable=True),
    FieldDef("priv.target_pid", I, "ptrace: the pid of the traced process",
             {T.PRIV: "(ev.arg1 if ev.op == 'ptrace' else None)"}, nullable=True),
    FieldDef("priv.target_is_descendant", B, "ptrace: the traced process is a descendant of the "
             "tracer (a debugger running its own child)",
             {T.PRIV: "(ev.op == 'ptrace' and E.is_descendant(ev.arg1, ev.pid))"}),
)

FIELDS: dict[str, FieldDef] = {f.name: f for f in _FIELD_LIST}
CATEGORIES = ("evt", "proc", "user", "container", "session", "net", "fd", "file", "priv")

#: names usable in the output of a threshold rule only
THRESHOLD_OUTPUT_FIELDS = {
    "threshold.value": "the count or sum that went above the limit",
    "threshold.count": "events counted in the window",
    "threshold.window": "the window, as written in the rule",
}

_FIELD_REF = re.compile(r"^([a-z_]+\.[a-z_0-9]+)(?:\[(\d+)\])?$")


def split_ref(text: str) -> tuple[str, int | None] | None:
    """``'proc.aname[2]'`` -> ``('proc.aname', 2)``; None when not field-shaped."""
    m = _FIELD_REF.match(text)
    if m is None:
        return None
    return m.group(1), (int(m.group(2)) if m.group(2) is not None else None)


# ---- helpers the expressions call (bound into the compiled code's namespace) ----

def _basename(path: str | None) -> str | None:
    if path is None:
        return None
    return path[path.rfind("/") + 1:]      # rsplit's last part, without its list


def _dirname(path: str | None) -> str | None:
    if path is None:
        return None
    head, sep, _ = path.rpartition("/")
    return (head or "/") if sep else ""


def _program(name: str) -> str:
    return _VERSION_SUFFIX.sub("", name) or name


@functools.lru_cache(maxsize=4096)
def _is_shell(name: str) -> bool:
    # cached: several rules ask it of every exec, and program names repeat
    return name in SHELLS or _program(name) in SHELLS


@functools.lru_cache(maxsize=4096)
def _is_interpreter(name: str) -> bool:
    return name in INTERPRETERS or _program(name) in INTERPRETERS


#: programs that run a file given by -f as code: make's recipes are shell commands, awk's
#: system() and pipes run commands
_FILE_FLAG_PROGRAMS = frozenset({"make", "gmake", "bmake", "awk", "gawk", "mawk", "nawk"})


def _script_name(argv: tuple[str, ...]) -> str | None:
    """The last component of the file ``argv`` runs as code (see proc.script_name)."""
    if len(argv) < 2:
        return None
    if _basename(argv[0]) not in _FILE_FLAG_PROGRAMS:
        return _basename(argv[1])
    for i in range(1, len(argv)):
        a = argv[i]
        if a in ("-f", "--file", "--makefile"):
            return _basename(argv[i + 1]) if i + 1 < len(argv) else None
        if a.startswith(("--file=", "--makefile=")):
            return _basename(a.partition("=")[2])
        if a.startswith("-f") and len(a) > 2:
            return _basename(a[2:])
        if a == "--":
            break
    return None


def _nth(argv: tuple[str, ...], n: int) -> str | None:
    return argv[n] if n < len(argv) else None


def _anc_all(ancestors: list[Any], attr: str) -> tuple[Any, ...]:
    return tuple(getattr(a, attr) for a in ancestors)


def _anc_nth(ancestors: list[Any], n: int, attr: str, self_value: Any) -> Any:
    if n == 0:
        return self_value
    return getattr(ancestors[n - 1], attr) if n <= len(ancestors) else None


_FD_TYPES = {"inet": ("ipv4", "4"), "inet6": ("ipv6", "6"), "unix": ("unix", "u")}


def _fd_type(family: str | None, i: int) -> str | None:
    names = _FD_TYPES.get(family or "")
    return None if names is None else names[i]


@functools.lru_cache(maxsize=1024)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def _errno_name(err: int) -> str:
    return "SUCCESS" if err == 0 else errno.errorcode.get(err, f"E{err}")


_INET = ("inet", "inet6")


def _ip(family: str | None, addr: str | None) -> str | None:
    return addr if family in _INET and addr else None


def _port(family: str | None, port: int | None) -> int | None:
    return port if family in _INET else None


def _stdio_sock(p: Any) -> tuple[str, str, int] | None:
    for fd in (0, 1, 2):
        sock = p.stdio_sockets.get(fd)
        if sock is not None and sock[0] in _INET:
            return sock
    return None


def _stdio_field(p: Any, i: int) -> Any:
    sock = _stdio_sock(p)
    return None if sock is None else sock[i]


def _outbound_sock(p: Any) -> bool:
    if not p.sockets and not p.past_sockets:
        return False
    for sock in (*p.sockets.values(), *p.past_sockets):
        if sock[0] in _INET and sock[1] and not sock[1].startswith("127.") and sock[1] != "::1":
            return True
    return False


def _parent_outbound(ctx: Any, p: Any) -> bool:
    """The parent's sockets: one table lookup, not the ancestry walk."""
    parent = ctx.table.get(p.ppid) if p.ppid else None
    return parent is not None and _outbound_sock(parent)


_NO_SOCK = (None, None, None)


def _dup_sock(ev: Any, p: Any) -> tuple[Any, Any, Any]:
    """(family, daddr, dport) of the socket a dup copied: the kernel's fd kind, else the event
    or the process table (proctable.dup_socket)."""
    sock = dup_socket(ev, p)
    if sock is None:
        return _NO_SOCK
    return sock[0], sock[1] or None, sock[2]


#: argv[1] of a shell or interpreter reading its program from stdin (the program_from_stdin
#: macro of rules/execution.yaml says the same for the acting process)
_STDIN_PROGRAM_ARGS = frozenset({"-", "-s", "-i", "-is", "-si", "-li", "-il", "-p", "-ip", "-pi", "-ls",
                                 "-sl", "--login"})


def _reads_program_from_stdin(q: Any) -> bool:
    name = q.name
    if not (_is_shell(name) or _is_interpreter(name)):
        return False
    return len(q.argv) <= 1 or q.argv[1] in _STDIN_PROGRAM_ARGS


def _relay_net(ctx: Any, p: Any) -> Any:
    """The process with an outbound inet socket that both feeds p's stdin and reads its
    stdout through pipes, fifos or ptys (at most RELAY_HOPS processes away each way; the
    stdout side's is returned), or None."""
    if 0 not in p.chans or 1 not in p.chans:
        return None
    table = ctx.table
    if table.chan_reach(p, 0, True, _outbound_sock) is None:
        return None
    return table.chan_reach(p, 1, False, _outbound_sock)


def _fed_shell(ctx: Any, p: Any) -> Any:
    """A live shell or interpreter reading its program from stdin, joined to p through pipes,
    fifos or ptys (either way), for which _relay_net holds now; or None."""
    if not p.chans:
        return None
    table = ctx.table
    for upstream in (False, True):
        for fd in list(p.chans):
            q = table.chan_reach(p, fd, upstream, _reads_program_from_stdin)
            if q is not None and _relay_net(ctx, q) is not None:
                return q
    return None


def _relay_peer(ctx: Any, p: Any, attr: str = "name") -> Any:
    q = _relay_net(ctx, p) or _fed_shell(ctx, p)
    return None if q is None else getattr(q, attr)


def _procfs_pid(path: str | None, pid: int) -> int | None:
    if path is None or not path.startswith("/proc/"):
        return None
    part = path[6:].split("/", 1)[0]
    if part in ("self", "thread-self"):
        return pid
    return int(part) if part.isdigit() else None


def _link_target(target: str, path: str, symlink: bool) -> str:
    if symlink and target and not target.startswith("/"):
        base = _dirname(path)
        target = f"{base}/{target}" if base else target
    return posixpath.normpath(target) if ("/." in target or "//" in target) else target


def _other_proc(path: str | None, pid: int, tid: int) -> bool:
    target = _procfs_pid(path, pid)
    return target is not None and target != pid and target != tid


HELPERS: dict[str, Any] = {
    "_basename": _basename, "_dirname": _dirname, "_is_shell": _is_shell,
    "_is_interpreter": _is_interpreter, "_nth": _nth, "_script_name": _script_name,
    "_anc_all": _anc_all, "_anc_nth": _anc_nth,
    "_ip": _ip, "_port": _port, "_stdio_sock": _stdio_sock, "_stdio_field": _stdio_field,
    "_outbound_sock": _outbound_sock, "_parent_outbound": _parent_outbound,
    "_dup_sock": _dup_sock, "_relay_net": _relay_net, "_fed_shell": _fed_shell,
    "_relay_peer": _relay_peer, "_procfs_pid": _procfs_pid, "_other_proc": _other_proc,
    "_fd_type": _fd_type, "_user_name": _user_name, "_errno_name": _errno_name,
    "_link_target": _link_target,
}


def catalogue() -> list[dict[str, Any]]:
    """The catalogue as plain data (``rules fields --json``, docs)."""
    out = []
    for f in _FIELD_LIST:
        name = f.name + ("[n]" if f.indexed == "required" else "")
        types = sorted(t.label for t in f.exprs)
        out.append({
            "name": name, "type": f.value_type(None), "events": "all" if len(types) == len(ALL) else types,
            "indexed": f.indexed != "no", "description": f.doc,
        })
    return out


def markdown_table() -> str:
    """The catalogue as the Markdown table of docs/rules.md (a test keeps the two equal)."""
    lines = ["| field | type | events | meaning |", "|---|---|---|---|"]
    for row in catalogue():
        name = row["name"] + ("[n]" if row["indexed"] and not row["name"].endswith("]") else "")
        events = "all" if row["events"] == "all" else ", ".join(row["events"])
        lines.append(f"| `{name}` | {row['type']} | {events} | {row['description'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _check_catalogue() -> None:
    """Fail at import if an expression refers to a field that does not exist."""
    for f in _FIELD_LIST:
        for text in (*f.exprs.values(), *f.index_exprs.values()):
            for ref in re.findall(r"\{f:([a-z_.]+)\}", text):
                if ref not in FIELDS:
                    raise AssertionError(f"field {f.name} refers to unknown field {ref}")


_check_catalogue()
del _check_catalogue
