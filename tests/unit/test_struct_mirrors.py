"""The Python mirrors of bpf/include/events.h: numbers, flags, sizes, offsets."""

from __future__ import annotations

import ctypes
import re

import pytest

from coi_sentinel.assets import asset_dir
from coi_sentinel.events import structs, types

pytestmark = pytest.mark.unit

HEADER = (asset_dir("bpf") / "include" / "events.h").read_text()


def c_enum(name: str) -> dict[str, int]:
    body = re.search(r"enum %s \{(.*?)\};" % name, HEADER, re.S).group(1)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(\w+)\s*=\s*(\d+)", body)}


def c_define(name: str) -> int:
    m = re.search(r"^#define %s\s+(.+?)\s*(?:/\*.*)?$" % name, HEADER, re.M)
    assert m, name
    expr = re.sub(r"(\d)(?:ULL|UL|U|u)\b", r"\1", m.group(1))
    assert re.fullmatch(r"[\s\d()<x+|a-fA-F]+", expr), expr  # numbers, shifts, ors only
    return int(eval(expr, {"__builtins__": {}}))  # noqa: S307 (checked above)


def test_event_type_numbers_match_c():
    c = c_enum("event_type")
    py = {f"EVT_{t.name}": t.value for t in types.EventType}
    assert {k: v for k, v in c.items() if k != "EVT_MAX"} == py
    assert c["EVT_MAX"] == types.EVT_MAX


def test_kill_reasons_match_c():
    c = c_enum("kill_reason")
    assert c.pop("KILL_REASON_MAX") == types.KILL_REASON_MAX
    assert c == {f"KILL_REASON_{name.upper()}": n for n, name in types.KILL_REASONS.items()}


def test_ring_retry_slots_match_c():
    c = c_enum("ring_retry")
    assert c.pop("RETRY_KINDS") == types.RETRY_KINDS
    assert c == {f"RETRY_{name.upper()}": n for n, name in types.RING_RETRIES.items()}


def test_priv_ops_match_c():
    c = c_enum("priv_op")
    assert c == {f"PRIV_{op.name}": op.value for op in types.PrivOp}


@pytest.mark.parametrize("name", [
    "EXEC_ARGS_TRUNCATED", "EXEC_FILENAME_TRUNCATED", "EXEC_VIA_FD", "EXEC_FROM_MEMFD",
    "EXEC_ARGS_FROM_CALLER", "FILE_KIND_WRITE", "FILE_KIND_SENSITIVE", "DUP_OLDFD_SOCKET",
    "SCOPE_NONE", "SCOPE_ALL", "SCOPE_LISTED", "COMM_LEN", "PATH_LEN", "ARGS_BUF", "UNIX_PATH_LEN",
    "EXEC_KILLED", "EXEC_FROM_TMPFILE", "EXEC_UNLINKED", "EXEC_STDIO_SOCKET", "CONNECT_KILLED",
    "CONNECT_FASTOPEN", "CONNECT_SENDTO", "SOCK_ACCEPTED", "SOCK_LOCAL_ADDR", "URING_KILLED",
    "URING_SQPOLL",
    "LINK_SYMLINK", "DUP_KILLED", "KILL_MEMFD_EXEC", "KILL_BLOCKED_CONNECT", "KILL_SHELL_SOCKET",
    "KILL_URING_CONNECT", "KILL_UNLINKED_EXEC", "KILL_COMPAT_SYSCALL", "COMPAT_KILLED", "COMPAT_X32",
])
def test_constants_match_c(name):
    assert c_define(name) == getattr(types, name)


def test_path_hash_constants_match_c():
    init = re.search(r"#define PATH_HASH_INIT (0x[0-9a-fA-F]+)ULL", HEADER).group(1)
    prime = re.search(r"#define PATH_HASH_PRIME (0x[0-9a-fA-F]+)ULL", HEADER).group(1)
    assert int(init, 16) == structs.PATH_HASH_INIT and int(prime, 16) == structs.PATH_HASH_PRIME


def test_every_c_struct_has_a_mirror():
    c_structs = set(re.findall(r"^struct (\w+) \{", HEADER, re.M))
    assert c_structs == set(structs.C_NAMES)


def _flatten(obj) -> list:
    out = []
    for name, ctype, *_ in obj._fields_:
        v = getattr(obj, name)
        if isinstance(v, ctypes.Structure):
            out += _flatten(v)
        elif isinstance(v, bytes):
            out.append(v)
        elif isinstance(v, ctypes.Array):
            out.append(bytes(v))
        else:
            out.append(v)
    return out


def _fill(obj, counter=[1]) -> None:
    for name, ctype, *_ in obj._fields_:
        cur = getattr(obj, name)
        if isinstance(cur, ctypes.Structure):
            _fill(cur)
        elif isinstance(cur, (bytes, ctypes.Array)):
            size = ctypes.sizeof(ctype)
            setattr(obj, name, bytes([(counter[0] + i) % 250 + 1 for i in range(size - 1)]) + b"\0"
                    if issubclass(ctype._type_, ctypes.c_char) else
                    (ctype._type_ * size)(*[(counter[0] + i) % 250 for i in range(size)]))
            counter[0] += 1
        else:
            setattr(obj, name, counter[0] % 120 + 1)
            counter[0] += 1


@pytest.mark.parametrize("cls", list(structs.FORMATS))
def test_struct_format_matches_ctypes_layout(cls):
    fmt = structs.FORMATS[cls]
    assert fmt.size == ctypes.sizeof(cls), f"{cls.__name__}: format {fmt.size} != ctypes {ctypes.sizeof(cls)}"
    obj = cls()
    _fill(obj)
    unpacked = list(fmt.unpack(bytes(obj)))
    expected = _flatten(obj)
    # fixed char buffers come back whole from struct, NUL-terminated from ctypes
    norm = [u.rstrip(b"\0") if isinstance(u, bytes) else u for u in unpacked]
    exp = [e.rstrip(b"\0") if isinstance(e, bytes) else e for e in expected]
    assert norm == exp


@pytest.mark.parametrize("cls", list(structs.C_NAMES.values()))
def test_mirror_sizes_are_multiples_of_their_alignment(cls):
    assert ctypes.sizeof(cls) % ctypes.alignment(cls) == 0


def test_path_hash_examples():
    # values computed by hand from the definition in events.h
    assert structs.path_hash(b"") == ((structs.PATH_HASH_INIT ^ 0) * structs.PATH_HASH_PRIME) & (2**64 - 1)
    assert structs.path_hash(b"/a") != structs.path_hash(b"/b")
    assert structs.path_hash(b"x" * 7) != structs.path_hash(b"x" * 8)
