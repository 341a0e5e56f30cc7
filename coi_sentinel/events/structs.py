"""ctypes mirrors of every struct in bpf/include/events.h, and the struct.Struct formats the
decoder uses (faster than a ctypes cast).

Both are written out by hand on purpose: tests/bpf/test_layout.py compares sizes and field
offsets with what bcc derived from the C, and tests/unit/test_struct_mirrors.py checks that each
format string packs to the same size and offsets as its ctypes mirror.
"""

from __future__ import annotations

import ctypes
import struct

from .types import ARGS_BUF, COMM_LEN, PATH_LEN, UNIX_PATH_LEN

c_u8, c_u16, c_u32, c_s32, c_u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class EventHdr(ctypes.Structure):
    _fields_ = [
        ("ts_ns", c_u64),
        ("cgroup_id", c_u64),
        ("scope_id", c_u64),
        ("type", c_u32),
        ("pid", c_u32),
        ("tid", c_u32),
        ("ppid", c_u32),
        ("uid", c_u32),
        ("gid", c_u32),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class SockInfo(ctypes.Structure):
    _fields_ = [("family", c_u16), ("port", c_u16), ("flags", c_u32), ("addr", c_u8 * 16)]


class ExecEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("argc", c_u32),
        ("args_len", c_u32),
        ("flags", c_u32),
        ("fd", c_s32),
        ("envc", c_u32),
        ("filename", ctypes.c_char * PATH_LEN),
        ("args", ctypes.c_char * ARGS_BUF),
    ]


class ForkEvent(ctypes.Structure):
    _fields_ = [("hdr", EventHdr), ("clone_flags", c_u64), ("child_pid", c_u32), ("pad", c_u32)]


class ExitEvent(ctypes.Structure):
    _fields_ = [("hdr", EventHdr), ("exit_code", c_s32), ("signal", c_u32)]


class ConnectEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("fd", c_s32),
        ("sock", SockInfo),
        ("unix_path", ctypes.c_char * UNIX_PATH_LEN),
        ("flags", c_u32),
    ]


class SockEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("fd", c_s32),
        ("sock", SockInfo),
        ("backlog", c_u32),
        ("pad", c_u32),
    ]


class UringEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("opcode", c_u32),
        ("flags", c_u32),
        ("user_data", c_u64),
        ("sqe_flags", c_u64),
    ]


class MmapEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("fd", c_s32),
        ("prot", c_u32),
        ("flags", c_u32),
        ("pad", c_u32),
        ("len", c_u64),
        ("path", ctypes.c_char * PATH_LEN),
    ]


class UtimeEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("fd", c_s32),
        ("flags", c_u32),
        ("how", c_u32),
        ("atime", ctypes.c_int64),
        ("mtime", ctypes.c_int64),
        ("path", ctypes.c_char * PATH_LEN),
    ]


class CommKey(ctypes.Structure):
    _fields_ = [("comm", ctypes.c_char * COMM_LEN)]


class ChanInfo(ctypes.Structure):
    _fields_ = [("id", c_u64), ("kind", c_u32), ("end", c_u32)]


class DupEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("oldfd", c_s32),
        ("newfd", c_s32),
        ("flags", c_u32),
        ("sock", SockInfo),
        ("chan", ChanInfo),
    ]


class ChanEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("fd", c_s32),
        ("fd2", c_s32),
        ("op", c_u32),
        ("pty", c_u32),
        ("pad", c_u32),
        ("chan", ChanInfo),
    ]


class NetSendEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("fd", c_s32),
        ("calls", c_u32),
        ("bytes", c_u64),
        ("first_ts", c_u64),
        ("sock", SockInfo),
    ]


class FileOpenEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("dirfd", c_s32),
        ("flags", c_u32),
        ("mode", c_u32),
        ("kind", c_u32),
        ("pad", c_u32),
        ("path", ctypes.c_char * PATH_LEN),
    ]


class PathEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("fd", c_s32),
        ("mode", c_u32),
        ("pad", c_u32),
        ("path", ctypes.c_char * PATH_LEN),
    ]


class RenameEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("flags", c_u32),
        ("oldpath", ctypes.c_char * PATH_LEN),
        ("newpath", ctypes.c_char * PATH_LEN),
    ]


class PrivEvent(ctypes.Structure):
    _fields_ = [
        ("hdr", EventHdr),
        ("ret", c_s32),
        ("op", c_u32),
        ("arg0", c_u64),
        ("arg1", c_u64),
        ("str", ctypes.c_char * PATH_LEN),
    ]


class FileKey(ctypes.Structure):
    _fields_ = [("tgid", c_u32), ("kind", c_u32), ("path_hash", c_u64)]


class FileAgg(ctypes.Structure):
    _fields_ = [
        ("first_ts", c_u64),
        ("last_ts", c_u64),
        ("bytes", c_u64),
        ("scope_id", c_u64),
        ("cgroup_id", c_u64),
        ("opens", c_u32),
        ("writes", c_u32),
        ("flags", c_u32),
        ("uid", c_u32),
        ("path", ctypes.c_char * PATH_LEN),
    ]


class FdKey(ctypes.Structure):
    _fields_ = [("tgid", c_u32), ("fd", c_s32)]


class NetAgg(ctypes.Structure):
    _fields_ = [
        ("first_ts", c_u64),
        ("last_ts", c_u64),
        ("bytes", c_u64),
        ("scope_id", c_u64),
        ("cgroup_id", c_u64),
        ("calls", c_u32),
        ("uid", c_u32),
        ("sock", SockInfo),
    ]


class ConnKey(ctypes.Structure):
    _fields_ = [("tgid", c_u32), ("ret", c_s32), ("family", c_u16), ("port", c_u16), ("addr", c_u8 * 16)]


class ConnAgg(ctypes.Structure):
    _fields_ = [
        ("first_ts", c_u64),
        ("last_ts", c_u64),
        ("scope_id", c_u64),
        ("cgroup_id", c_u64),
        ("count", c_u32),
        ("uid", c_u32),
    ]


class BlockedKey(ctypes.Structure):
    _fields_ = [
        ("prefixlen", c_u32),
        ("scope", c_u8 * 8),
        ("family", c_u8),
        ("addr", c_u8 * 16),
        ("pad", c_u8 * 3),
    ]


class BlockedPortKey(ctypes.Structure):
    _fields_ = [("scope_id", c_u64), ("port", c_u16), ("pad", c_u16 * 3)]


class LpmPathKey(ctypes.Structure):
    _fields_ = [("prefixlen", c_u32), ("data", ctypes.c_char * PATH_LEN)]


class ScopeCfg(ctypes.Structure):
    _fields_ = [("mode", c_u32), ("levels", c_u32), ("self_tgid", c_u32), ("host_level", c_u32)]


# --- struct.Struct formats used by the decoder (little-endian, no implicit padding) ---
HDR_FMT = "QQQIIIIII16s"
SOCK_FMT = "HHI16s"
CHAN_FMT = "QII"
HDR = struct.Struct("<" + HDR_FMT)
FORMATS: dict[type[ctypes.Structure], struct.Struct] = {
    EventHdr: HDR,
    ExecEvent: struct.Struct(f"<{HDR_FMT}iIIIiI{PATH_LEN}s{ARGS_BUF}s"),
    ForkEvent: struct.Struct(f"<{HDR_FMT}QII"),
    ExitEvent: struct.Struct(f"<{HDR_FMT}iI"),
    ConnectEvent: struct.Struct(f"<{HDR_FMT}ii{SOCK_FMT}{UNIX_PATH_LEN}sI"),
    DupEvent: struct.Struct(f"<{HDR_FMT}iiiI{SOCK_FMT}{CHAN_FMT}"),
    ChanEvent: struct.Struct(f"<{HDR_FMT}iiiIII{CHAN_FMT}"),
    SockEvent: struct.Struct(f"<{HDR_FMT}ii{SOCK_FMT}II"),
    UringEvent: struct.Struct(f"<{HDR_FMT}IIQQ"),
    MmapEvent: struct.Struct(f"<{HDR_FMT}iIIIQ{PATH_LEN}s"),
    UtimeEvent: struct.Struct(f"<{HDR_FMT}iiIIqq{PATH_LEN}s"),
    NetSendEvent: struct.Struct(f"<{HDR_FMT}iIQQ{SOCK_FMT}"),
    FileOpenEvent: struct.Struct(f"<{HDR_FMT}iiIIII{PATH_LEN}s"),
    PathEvent: struct.Struct(f"<{HDR_FMT}iiII{PATH_LEN}s"),
    RenameEvent: struct.Struct(f"<{HDR_FMT}iI{PATH_LEN}s{PATH_LEN}s"),
    PrivEvent: struct.Struct(f"<{HDR_FMT}iIQQ{PATH_LEN}s"),
    FileAgg: struct.Struct(f"<QQQQQIIII{PATH_LEN}s"),
    NetAgg: struct.Struct("<QQQQQII" + SOCK_FMT),
    ConnKey: struct.Struct("<IiHH16s"),
    ConnAgg: struct.Struct("<QQQQII"),
}

#: C struct name -> mirror, for the layout tests
C_NAMES: dict[str, type[ctypes.Structure]] = {
    "event_hdr": EventHdr,
    "sock_info": SockInfo,
    "exec_event": ExecEvent,
    "fork_event": ForkEvent,
    "exit_event": ExitEvent,
    "connect_event": ConnectEvent,
    "dup_event": DupEvent,
    "chan_info": ChanInfo,
    "chan_event": ChanEvent,
    "sock_event": SockEvent,
    "uring_event": UringEvent,
    "mmap_event": MmapEvent,
    "utime_event": UtimeEvent,
    "comm_key": CommKey,
    "net_send_event": NetSendEvent,
    "file_open_event": FileOpenEvent,
    "path_event": PathEvent,
    "rename_event": RenameEvent,
    "priv_event": PrivEvent,
    "file_key": FileKey,
    "file_agg": FileAgg,
    "fd_key": FdKey,
    "net_agg": NetAgg,
    "conn_key": ConnKey,
    "conn_agg": ConnAgg,
    "lpm_path_key": LpmPathKey,
    "blocked_key": BlockedKey,
    "blocked_port_key": BlockedPortKey,
    "scope_cfg": ScopeCfg,
}


PATH_HASH_INIT = 0xCBF29CE484222325
PATH_HASH_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def path_hash(path: bytes) -> int:
    """file_key.path_hash of a path, as file.bpf.c computes it (events.h: PATH_HASH_INIT)."""
    data = path[:PATH_LEN - 1] + b"\0"
    data += b"\0" * (-len(data) % 8)
    h = PATH_HASH_INIT
    prime, mask = PATH_HASH_PRIME, _U64
    for w in _WORDS[len(data) >> 3](data):      # one unpack: every word at once
        h = ((h ^ w) * prime) & mask
    return h


#: number of u64 words -> the unpack of that many
_WORDS = [struct.Struct(f"<{n}Q").unpack for n in range(PATH_LEN // 8 + 1)]
