"""Raw ring-buffer records -> typed events. Needs no kernel: only bytes and the formats in
:mod:`coi_sentinel.events.structs`.
"""

from __future__ import annotations

import ipaddress
from typing import Callable

from ..errors import EventDecodeError
from . import model, structs
from .types import (
    CONNECT_KILLED,
    CONNECT_SENDTO,
    AF_INET,
    AF_INET6,
    AF_UNIX,
    CHAN_END_LABELS,
    CHAN_KIND_LABELS,
    CHAN_OP_LABELS,
    COMPAT_SYSCALLS_X86_64,
    COMPAT_X32,
    DUP_FD_KINDS,
    DUP_KILLED,
    DUP_OLDFD_SOCKET,
    LINK_SYMLINK,
    SOCK_LOCAL_ADDR,
    URING_KILLED,
    URING_OPS,
    URING_SQPOLL,
    UTIME_BACKDATED,
    UTIME_SET_ATIME,
    UTIME_SET_MTIME,
    FAMILY_LABELS,
    FILE_KIND_FAILED,
    FILE_KIND_LABELS,
    FILE_KIND_TRUNCATE,
    EventType,
    PrivOp,
)

#: maps a scope (container-level cgroup) id to a container name
ContainerResolver = Callable[[int], str]

#: process names remembered by a decoder (all forgotten when full)
COMM_CACHE = 4096
_HDR_SIZE = structs.HDR.size
_FILE_OPEN = structs.FORMATS[structs.FileOpenEvent].unpack_from
_PATH_EVENT = structs.FORMATS[structs.PathEvent].unpack_from
#: a file_open's kind field (failed or not) -> its label
_FILE_KINDS = {kind | failed: label for kind, label in FILE_KIND_LABELS.items()
               for failed in (0, FILE_KIND_FAILED)}


def _host(_scope_id: int) -> str:
    return "host"


def cstr(raw: bytes) -> str:
    """A NUL-terminated C string from a fixed buffer, decoded leniently."""
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "surrogateescape")


def split_args(raw: bytes, used: int) -> tuple[str, ...]:
    data = raw[:used]
    if data.endswith(b"\0"):
        data = data[:-1]
    if not data:
        return ()
    return tuple(a.decode("utf-8", "surrogateescape") for a in data.split(b"\0"))


def sock_addr(family: int, port: int, addr: bytes, unix_path: bytes = b"") -> tuple[str, str, int]:
    """(family label, address text, port) of a sock_info."""
    if family == AF_INET:
        return "inet", str(ipaddress.IPv4Address(addr[:4])), port
    if family == AF_INET6:
        return "inet6", str(ipaddress.IPv6Address(addr[:16])), port
    if family == AF_UNIX:
        if unix_path[:1] == b"\0":  # abstract socket
            return "unix", "@" + cstr(unix_path[1:]), 0
        return "unix", cstr(unix_path), 0
    return FAMILY_LABELS.get(family, str(family)), "", port


def compat_name(nr: int, flags: int) -> str:
    """The name of a 32-bit system call the generic hook reported (op compat_syscall)."""
    if flags & COMPAT_X32:
        return f"x32:{nr}"
    return COMPAT_SYSCALLS_X86_64.get(nr, str(nr))


def _errno(ret: int) -> int:
    return -ret if ret < 0 else 0


class Decoder:
    """Decodes raw records. One instance per stream; ``resolve`` names containers."""

    def __init__(self, resolve: ContainerResolver = _host) -> None:
        self.resolve = resolve
        #: raw comm field (16 bytes) -> its text
        self._comms: dict[bytes, str] = {}
        self._by_type: dict[int, Callable[[bytes], model.Event]] = {
            EventType.EXEC: self._exec,
            EventType.FORK: self._fork,
            EventType.EXIT: self._exit,
            EventType.CONNECT: self._connect,
            EventType.DUP: self._dup,
            EventType.NET_SEND: self._net_send,
            EventType.FILE_OPEN: self._file_open,
            EventType.RENAME: self._rename,
            EventType.UNLINK: self._unlink,
            EventType.CHMOD: self._chmod,
            EventType.PRIV: self._priv,
            EventType.ACCEPT: self._accept,
            EventType.BIND: self._bind,
            EventType.LISTEN: self._listen,
            EventType.URING: self._uring,
            EventType.LINK: self._link,
            EventType.CHDIR: self._chdir,
            EventType.MMAP_WRITE: self._mmap_write,
            EventType.CHAN: self._chan,
            EventType.UTIME: self._utime,
        }
        #: the same, by the type field's raw bytes (u32, little-endian)
        self._by_raw_type = {int(t).to_bytes(4, "little"): fn for t, fn in self._by_type.items()}

    def decode(self, raw: bytes) -> model.Event:
        # the type's four bytes select the method (no int made of them); the length is
        # checked only when something fails: a short record cannot unpack
        fn = self._by_raw_type.get(raw[24:28])
        if fn is None:
            self._refuse(raw)
            raise AssertionError("a known type's bytes without a decoder")
        try:
            return fn(raw)
        except Exception as err:  # struct.error, ValueError from a short or bad record
            self._refuse(raw)
            raise EventDecodeError(f"bad {EventType(int.from_bytes(raw[24:28], 'little')).label} record "
                                   f"({len(raw)} bytes): {err}") from err

    def _refuse(self, raw: bytes) -> None:
        """Raise what is wrong with a record no method could take: too short, or of an
        unknown type (returns for a record of a known type and a full header)."""
        if len(raw) < _HDR_SIZE:
            raise EventDecodeError(f"record of {len(raw)} bytes is shorter than the event header")
        etype = int.from_bytes(raw[24:28], "little")
        if etype not in self._by_type:
            raise EventDecodeError(f"unknown event type {etype} in a raw record")

    def header(self, h: tuple) -> tuple:
        ts, cg, scope, _type, pid, tid, ppid, uid, gid, comm = h[:10]
        name = self._comms.get(comm)
        if name is None:
            name = self._comm(comm)
        return (ts, pid, tid, ppid, uid, gid, name, cg, scope, self.resolve(scope))

    def _comm(self, raw: bytes) -> str:
        """A process name, decoded once: the same few names come back in every record."""
        if len(self._comms) >= COMM_CACHE:
            self._comms.clear()
        name = self._comms[raw] = cstr(raw)
        return name

    # one method per record type: unpack, then build the dataclass positionally (fastest)
    def _exec(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.ExecEvent].unpack_from(raw)
        ret, argc, args_len, flags, fd, envc, filename, args = v[10:]
        strings = split_args(args, args_len)
        env = ()
        if envc:
            envc = min(envc, len(strings))
            strings, env = strings[:-envc], strings[-envc:]
        return model.ExecEvent(*self.header(v), cstr(filename), strings, argc, _errno(ret), fd, flags,
                               env)

    def _fork(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.ForkEvent].unpack_from(raw)
        clone_flags, child, _pad = v[10:]
        return model.ForkEvent(*self.header(v), child, clone_flags)

    def _exit(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.ExitEvent].unpack_from(raw)
        code, sig = v[10:]
        return model.ExitEvent(*self.header(v), code, sig)

    def _connect(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.ConnectEvent].unpack_from(raw)
        ret, fd, family, port, _p, addr, unix_path, flags = v[10:]
        fam, daddr, dport = sock_addr(family, port, addr, unix_path)
        return model.ConnectEvent(*self.header(v), fd, fam, daddr, dport, _errno(ret),
                                  bool(flags & CONNECT_KILLED), bool(flags & CONNECT_SENDTO))

    def _dup(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.DupEvent].unpack_from(raw)
        ret, oldfd, newfd, flags, family, port, _p, addr, chan_id, kind, end = v[10:]
        is_sock = bool(flags & DUP_OLDFD_SOCKET)
        fam, daddr, dport = sock_addr(family, port, addr) if is_sock else ("", "", 0)
        fd_kind = ("socket" if is_sock else CHAN_KIND_LABELS.get(kind, "other")) if flags & DUP_FD_KINDS else ""
        return model.DupEvent(*self.header(v), oldfd, newfd, _errno(ret), is_sock, fam, daddr, dport,
                              bool(flags & DUP_KILLED), fd_kind, chan_id if kind else 0,
                              CHAN_END_LABELS.get(end, "") if kind else "")

    def _utime(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.UtimeEvent].unpack_from(raw)
        ret, fd, flags, how, atime, mtime, path = v[10:]
        return model.UtimeEvent(*self.header(v), cstr(path), fd, flags,
                                atime if how & UTIME_SET_ATIME else -1,
                                mtime if how & UTIME_SET_MTIME else -1,
                                bool(how & UTIME_BACKDATED), _errno(ret))

    def _chan(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.ChanEvent].unpack_from(raw)
        ret, fd, fd2, op, pty, _pad, chan_id, kind, end = v[10:]
        return model.ChanEvent(*self.header(v), CHAN_OP_LABELS.get(op, str(op)), fd, fd2,
                               CHAN_KIND_LABELS.get(kind, str(kind)), CHAN_END_LABELS.get(end, str(end)),
                               chan_id, -1 if pty == 0xFFFFFFFF else pty, _errno(ret))

    def _net_send(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.NetSendEvent].unpack_from(raw)
        fd, calls, nbytes, first_ts, family, port, _p, addr = v[10:]
        fam, daddr, dport = sock_addr(family, port, addr)
        return model.NetSendEvent(*self.header(v), fd, nbytes, calls, fam, daddr, dport, first_ts)

    # the flood's types (file_open, unlink) unpack the header into locals and decode the
    # name and path inline: no header tuple, no call per string (the methods above, as written)
    def _file_open(self, raw: bytes) -> model.Event:
        (ts, cg, scope, _type, pid, tid, ppid, uid, gid, comm,
         ret, dirfd, flags, mode, kind, _pad, path) = _FILE_OPEN(raw)
        # a truncate's ret is 0, not an fd: its fd is ftruncate's (in dirfd), -1 for truncate()
        fd = (dirfd if dirfd >= 0 else -1) if kind == FILE_KIND_TRUNCATE else ret if ret >= 0 else -1
        return model.FileOpenEvent(ts, pid, tid, ppid, uid, gid, self._comms.get(comm) or self._comm(comm),
                                   cg, scope, self.resolve(scope),
                                   path.partition(b"\0")[0].decode("utf-8", "surrogateescape"),
                                   flags, mode, fd, -ret if ret < 0 else 0,
                                   _FILE_KINDS.get(kind) or str(kind), dirfd)

    def _rename(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.RenameEvent].unpack_from(raw)
        ret, flags, oldp, newp = v[10:]
        return model.RenameEvent(*self.header(v), cstr(oldp), cstr(newp), flags, _errno(ret))

    def _unlink(self, raw: bytes) -> model.Event:
        ts, cg, scope, _type, pid, tid, ppid, uid, gid, comm, ret, fd, mode, _pad, path = _PATH_EVENT(raw)
        return model.UnlinkEvent(ts, pid, tid, ppid, uid, gid, self._comms.get(comm) or self._comm(comm),
                                 cg, scope, self.resolve(scope),
                                 path.partition(b"\0")[0].decode("utf-8", "surrogateescape"),
                                 fd, mode, -ret if ret < 0 else 0)

    def _chmod(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.PathEvent].unpack_from(raw)
        ret, fd, mode, _pad, path = v[10:]
        return model.ChmodEvent(*self.header(v), cstr(path), fd, mode, _errno(ret))

    def _priv(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.PrivEvent].unpack_from(raw)
        ret, op, arg0, arg1, detail = v[10:]
        try:
            op_name = PrivOp(op).name.lower()
        except ValueError:
            op_name = str(op)
        text = cstr(detail)
        if op == PrivOp.COMPAT_SYSCALL:
            text = compat_name(arg0, arg1)
        return model.PrivEvent(*self.header(v), op_name, arg0, arg1, text, _errno(ret))

    def _sock(self, raw: bytes) -> tuple:
        v = structs.FORMATS[structs.SockEvent].unpack_from(raw)
        ret, fd, family, port, sflags, addr, backlog, _pad = v[10:]
        fam, addr_text, port = sock_addr(family, port, addr) if family else ("", "", 0)
        return v, ret, fd, fam, addr_text, port, sflags, backlog

    def _accept(self, raw: bytes) -> model.Event:
        v, ret, fd, fam, addr, port, sflags, _b = self._sock(raw)
        return model.AcceptEvent(*self.header(v), ret if ret >= 0 else -1, fd, fam, addr, port,
                                 _errno(ret), bool(sflags & SOCK_LOCAL_ADDR))

    def _bind(self, raw: bytes) -> model.Event:
        v, ret, fd, fam, addr, port, _f, _b = self._sock(raw)
        return model.BindEvent(*self.header(v), fd, fam, addr, port, _errno(ret))

    def _listen(self, raw: bytes) -> model.Event:
        v, ret, fd, fam, addr, port, _f, backlog = self._sock(raw)
        return model.ListenEvent(*self.header(v), fd, fam, addr, port, backlog, _errno(ret))

    def _uring(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.UringEvent].unpack_from(raw)
        opcode, flags, user_data, _sqe_flags = v[10:]
        return model.UringEvent(*self.header(v), URING_OPS.get(opcode, str(opcode)), opcode, user_data,
                                bool(flags & URING_SQPOLL), bool(flags & URING_KILLED))

    def _link(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.RenameEvent].unpack_from(raw)
        ret, flags, oldp, newp = v[10:]
        return model.LinkEvent(*self.header(v), cstr(oldp), cstr(newp), bool(flags & LINK_SYMLINK),
                               flags & ~LINK_SYMLINK, _errno(ret))

    def _chdir(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.PathEvent].unpack_from(raw)
        ret, fd, _mode, _pad, path = v[10:]
        return model.ChdirEvent(*self.header(v), cstr(path), fd, _errno(ret))

    def _mmap_write(self, raw: bytes) -> model.Event:
        v = structs.FORMATS[structs.MmapEvent].unpack_from(raw)
        fd, prot, flags, _pad, length, path = v[10:]
        return model.MmapWriteEvent(*self.header(v), fd, cstr(path), prot, flags, length)
