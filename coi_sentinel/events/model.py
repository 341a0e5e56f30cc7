"""Typed events: what the probes saw, decoded, as slotted dataclasses (values, never changed).

Every event has the common header fields of :class:`Event`; each subclass adds its own. The
JSON form (:mod:`coi_sentinel.events.codec`) is the flat dict of these fields plus ``"type"``;
its field names are the trace schema documented in docs/events.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from .types import (
    COMPAT_KILLED,
    EXEC_ARGS_TRUNCATED,
    EXEC_FROM_MEMFD,
    EXEC_FROM_TMPFILE,
    EXEC_KILLED,
    EXEC_STDIO_SOCKET,
    EXEC_UNLINKED,
    EXEC_VIA_FD,
    EventType,
)

#: Events are values: nothing changes one once it is made (the codec reuses an event's JSON
#: line on that ground). They are not ``frozen=True`` dataclasses because a frozen dataclass's
#: ``__init__`` sets every field through ``object.__setattr__``, five times slower than plain
#: slot stores, and every event of the stream is built once (issue 18); ``unsafe_hash`` keeps
#: them hashable, as frozen ones were.
_event = dataclass(slots=True, unsafe_hash=True)


@_event
class Event:
    """Common header: who did it, when, and where (cgroup and container)."""

    type: ClassVar[EventType]

    ts_ns: int          # kernel CLOCK_MONOTONIC time of the event
    pid: int            # process id (tgid)
    tid: int            # thread id
    ppid: int           # parent process id; 0 when unknown
    uid: int
    gid: int
    comm: str
    cgroup_id: int      # leaf cgroup2 id
    scope_id: int       # container-level ancestor cgroup id
    container: str      # container name, or "host"

    @property
    def label(self) -> str:
        return self.type.label


@_event
class ExecEvent(Event):
    type: ClassVar[EventType] = EventType.EXEC
    filename: str                 # resolved by the kernel (success) or as passed (failure)
    argv: tuple[str, ...]
    argc: int                     # real argc; may exceed len(argv) when truncated
    errno: int                    # 0 on success
    fd: int                       # execveat dirfd, -100 for execve
    flags: int                    # EXEC_* bits
    #: the dynamic loader's variables of the new program's environment ("LD_PRELOAD=/x.so"...)
    env: tuple[str, ...] = ()

    @property
    def ld_preload(self) -> str:
        """LD_PRELOAD of the new program ("" when unset)."""
        for kv in self.env:
            if kv.startswith("LD_PRELOAD="):
                return kv[11:]
        return ""

    @property
    def args_truncated(self) -> bool:
        return bool(self.flags & EXEC_ARGS_TRUNCATED) or self.argc > len(self.argv)

    @property
    def via_fd(self) -> bool:
        return bool(self.flags & EXEC_VIA_FD)

    @property
    def from_memfd(self) -> bool:
        return bool(self.flags & EXEC_FROM_MEMFD) or self.filename.startswith("/memfd:")

    @property
    def deleted(self) -> bool:
        """The file had no name any more: unlinked after it was opened, or an O_TMPFILE."""
        return bool(self.flags & (EXEC_UNLINKED | EXEC_FROM_TMPFILE)) or self.filename.endswith(" (deleted)")

    @property
    def stdio_socket(self) -> bool:
        """fd 0 or 1 was an inet/inet6 socket (connected or accepted) when the program started."""
        return bool(self.flags & EXEC_STDIO_SOCKET)

    @property
    def killed(self) -> bool:
        """The kernel's kill policy sent SIGKILL before the new image ran."""
        return bool(self.flags & EXEC_KILLED)


@_event
class ForkEvent(Event):
    type: ClassVar[EventType] = EventType.FORK
    child_pid: int
    clone_flags: int


@_event
class ExitEvent(Event):
    type: ClassVar[EventType] = EventType.EXIT
    exit_code: int                # -1 when killed by a signal
    signal: int                   # fatal signal, 0 if none


@_event
class ConnectEvent(Event):
    type: ClassVar[EventType] = EventType.CONNECT
    fd: int
    family: str                   # "inet", "inet6", "unix"
    daddr: str                    # address, or the socket path for unix ("@name" if abstract)
    dport: int
    errno: int                    # 0, EINPROGRESS (115), ENETUNREACH (101), ...
    killed: bool = False          # the kernel's kill policy sent SIGKILL (blocked destination)
    #: no connect(): the first datagram sent to the destination (sendto/sendmsg with an address)
    sendto: bool = False


@_event
class ConnectRepeatEvent(Event):
    """Repeats of one connect (same process, destination and result) since the last report;
    the first connect of the series was a :class:`ConnectEvent`."""

    type: ClassVar[EventType] = EventType.CONNECT_REPEAT
    family: str
    daddr: str
    dport: int
    errno: int
    count: int
    first_ts_ns: int


@_event
class AcceptEvent(Event):
    """A connection accepted (accept/accept4) on an inet/inet6 socket."""

    type: ClassVar[EventType] = EventType.ACCEPT
    fd: int                       # the new socket, -1 on failure
    listen_fd: int
    family: str
    daddr: str                    # the peer's address (the local one when local_addr)
    dport: int
    errno: int
    local_addr: bool = False      # accept passed no address buffer: daddr/dport are the listener's


@_event
class BindEvent(Event):
    type: ClassVar[EventType] = EventType.BIND
    fd: int
    family: str
    laddr: str
    lport: int
    errno: int

    @property
    def all_interfaces(self) -> bool:
        return self.laddr in ("0.0.0.0", "::")


@_event
class ListenEvent(Event):
    type: ClassVar[EventType] = EventType.LISTEN
    fd: int
    family: str                   # "" when the bind was not seen (port chosen by the kernel)
    laddr: str
    lport: int
    backlog: int
    errno: int

    @property
    def all_interfaces(self) -> bool:
        return self.laddr in ("0.0.0.0", "::")


@_event
class UringEvent(Event):
    """An io_uring submission (the first of its opcode in the process, or any connect, accept,
    bind, listen). A connect's destination is not known."""

    type: ClassVar[EventType] = EventType.URING
    op: str                       # "connect", "openat", "write"... (IORING_OP_* in lower case)
    opcode: int
    user_data: int
    sqpoll: bool                  # submitted by the ring's SQPOLL kernel thread
    killed: bool                  # the kernel's kill policy sent SIGKILL (uring connect)


@_event
class LinkEvent(Event):
    """link/linkat (a hard link) or symlink/symlinkat: a new name, ``path``, for ``target``."""

    type: ClassVar[EventType] = EventType.LINK
    target: str                   # existing path (link) or the symlink's text (symlink)
    path: str                     # the new name
    symlink: bool
    flags: int
    errno: int


@_event
class ChdirEvent(Event):
    type: ClassVar[EventType] = EventType.CHDIR
    path: str                     # chdir's argument resolved; fchdir: the fd's directory
    fd: int                       # fchdir's fd, -100 for chdir
    errno: int


@_event
class MmapWriteEvent(Event):
    """A shared, writable mapping of a file: writes through it make no system call."""

    type: ClassVar[EventType] = EventType.MMAP_WRITE
    fd: int
    path: str                     # the file, when it was opened with write intent in scope
    prot: int
    flags: int
    length: int


@_event
class DupEvent(Event):
    type: ClassVar[EventType] = EventType.DUP
    oldfd: int
    newfd: int
    errno: int
    is_socket: bool               # oldfd is a socket the kernel saw connected or accepted
    family: str
    daddr: str
    dport: int
    killed: bool = False          # a shell put a network socket on its stdio: SIGKILL
    #: what oldfd is as the kernel tracks it: "socket", "pipe", "fifo", "pty", "socketpair" (a unix
    #: pair; "socket" means a connected or accepted one), "other" (none of
    #: those that it saw); "" in records from before fd kinds, where is_socket false says nothing
    fd_kind: str = ""
    chan_id: int = 0              # pipe/fifo/pty: what links its ends (0 when not known)
    chan_end: str = ""            # "read", "write", "rdwr", "master", "slave"


@_event
class UtimeEvent(Event):
    """utimensat with chosen times on a file the caller did not write (file.bpf.c): a copy
    keeping its source's times, and times set to "now", are not reported."""

    type: ClassVar[EventType] = EventType.UTIME
    path: str                     # joined to its dirfd; futimens: the file's path if known, else ""
    fd: int                       # the dirfd, or futimens's fd when path was not passed
    flags: int                    # utimensat flags
    atime: int                    # seconds; -1 when atime was not set to a chosen value
    mtime: int                    # seconds; -1 when mtime was not set to a chosen value
    backdated: bool               # a chosen time lies more than an hour in the past
    errno: int


@_event
class ChanEvent(Event):
    """A pipe, fifo or pty end came into being in the process (pipe.bpf.c)."""

    type: ClassVar[EventType] = EventType.CHAN
    op: str                       # "pipe" (fd read end, fd2 write end), "open", "ptpeer" (fd2 master),
                                  # "socketpair" (fd and fd2, both rdwr)
    fd: int
    fd2: int                      # -1 unless op is pipe or ptpeer
    kind: str                     # "pipe", "fifo", "pty", "socketpair" (AF_UNIX)
    end: str                      # end of fd: "read", "write", "rdwr", "master", "slave"
    chan_id: int                  # links the ends; 0 when not known (a pty whose master was not seen)
    pty: int                      # pty number of a /dev/pts/N open, else -1
    errno: int


@_event
class NetSendEvent(Event):
    type: ClassVar[EventType] = EventType.NET_SEND
    fd: int
    bytes: int                    # bytes sent since the previous NET_SEND of this socket
    calls: int
    family: str
    daddr: str
    dport: int
    first_ts_ns: int


@_event
class FileOpenEvent(Event):
    type: ClassVar[EventType] = EventType.FILE_OPEN
    path: str
    flags: int                    # open(2) flags
    mode: int
    fd: int                       # -1 on failure; truncate: ftruncate's fd, -1 for truncate()
    errno: int
    kind: str                     # "write", "sensitive" or "truncate" (truncate/ftruncate)
    dirfd: int


@_event
class FileWriteEvent(Event):
    """Summary of a process's opens of and writes to one path since the previous summary."""

    type: ClassVar[EventType] = EventType.FILE_WRITE
    path: str
    kind: str
    opens: int
    writes: int
    bytes: int
    failed: bool                  # the opens counted here failed
    first_ts_ns: int


@_event
class RenameEvent(Event):
    type: ClassVar[EventType] = EventType.RENAME
    oldpath: str
    newpath: str
    flags: int
    errno: int


@_event
class UnlinkEvent(Event):
    type: ClassVar[EventType] = EventType.UNLINK
    path: str
    dirfd: int
    flags: int
    errno: int


@_event
class ChmodEvent(Event):
    type: ClassVar[EventType] = EventType.CHMOD
    path: str                     # empty for fchmod
    fd: int
    mode: int
    errno: int

    @property
    def sets_setuid(self) -> bool:
        return bool(self.mode & 0o4000)

    @property
    def sets_setgid(self) -> bool:
        return bool(self.mode & 0o2000)


@_event
class PrivEvent(Event):
    type: ClassVar[EventType] = EventType.PRIV
    op: str                       # "ptrace", "mount", "unshare", ...
    arg0: int
    arg1: int
    detail: str                   # mount target, module params, memfd name
    errno: int

    @property
    def killed(self) -> bool:
        """The kernel's kill policy sent SIGKILL before the call ran (op compat_syscall)."""
        return self.op == "compat_syscall" and bool(self.arg1 & COMPAT_KILLED)


def kernel_kill_reason(ev: Event) -> str:
    """Why the kernel's kill policy sent SIGKILL with this event (its ``killed`` is true)."""
    if isinstance(ev, ExecEvent):
        if ev.from_memfd:
            return "exec from a memfd"
        if ev.deleted:
            return "exec of a file with no name (unlinked, or O_TMPFILE)"
        if ev.stdio_socket:
            return f"{ev.comm} started with a network socket on its stdin or stdout"
        return "exec"
    if isinstance(ev, ConnectEvent):
        return f"connect to {ev.daddr}:{ev.dport} (blocked)"
    if isinstance(ev, DupEvent):
        return f"{ev.comm} put a network socket ({ev.daddr}:{ev.dport}) on its fd {ev.newfd}"
    if isinstance(ev, UringEvent):
        return "connect through io_uring (destination unknown)"
    if isinstance(ev, PrivEvent):
        return f"32-bit system call {ev.detail} (int $0x80: no syscall hook follows it)"
    return ev.type.label


EVENT_CLASSES: dict[EventType, type[Event]] = {
    cls.type: cls
    for cls in (
        ExecEvent, ForkEvent, ExitEvent, ConnectEvent, ConnectRepeatEvent, DupEvent, NetSendEvent,
        FileOpenEvent, FileWriteEvent, RenameEvent, UnlinkEvent, ChmodEvent, PrivEvent,
        AcceptEvent, BindEvent, ListenEvent, UringEvent, LinkEvent, ChdirEvent, MmapWriteEvent,
        ChanEvent, UtimeEvent,
    )
}

#: field names per class, header first: the JSON keys of each event type
FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in EVENT_CLASSES.values()
}
HEADER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Event))

__all__ = [
    "Event", "ExecEvent", "ForkEvent", "ExitEvent", "ConnectEvent", "ConnectRepeatEvent",
    "DupEvent", "NetSendEvent",
    "FileOpenEvent", "FileWriteEvent", "RenameEvent", "UnlinkEvent", "ChmodEvent", "PrivEvent",
    "AcceptEvent", "BindEvent", "ListenEvent", "UringEvent", "LinkEvent", "ChdirEvent",
    "MmapWriteEvent", "ChanEvent", "UtimeEvent", "EVENT_CLASSES", "kernel_kill_reason", "FIELD_NAMES", "HEADER_FIELDS",
]
