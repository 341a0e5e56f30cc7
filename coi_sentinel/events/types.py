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

    @functools.cached_property
    def label(self) -> str:
        """The name used in JSON (``"exec"``, ``"file_open"``...); computed once per member
        (every event is counted and written under it)."""
        return self.name.lower()


EVT_MAX = 16
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


# exec_event.flags
EXEC_ARGS_TRUNCATED = 1 << 0
EXEC_FILENAME_TRUNCATED = 1 << 1
EXEC_VIA_FD = 1 << 2
EXEC_FROM_MEMFD = 1 << 3
EXEC_ARGS_FROM_CALLER = 1 << 4
EXEC_KILLED = 1 << 5

# connect_event.flags
CONNECT_KILLED = 1 << 0

# kill policy (kill_cfg) and reasons (kills)
KILL_MEMFD_EXEC = 1 << 0
KILL_BLOCKED_CONNECT = 1 << 1
KILL_REASONS = {0: "memfd_exec", 1: "blocked_connect"}
KILL_REASON_MAX = 4

# file kinds
FILE_KIND_WRITE = 1
FILE_KIND_SENSITIVE = 2
FILE_KIND_FAILED = 0x100
FILE_KIND_LABELS = {FILE_KIND_WRITE: "write", FILE_KIND_SENSITIVE: "sensitive"}

# dup_event.flags
DUP_OLDFD_SOCKET = 1 << 0

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
