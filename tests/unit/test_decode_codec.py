"""Raw records -> events -> JSON -> events, without a kernel."""

from __future__ import annotations

import ctypes
import errno
import socket

import pytest

from coi_sentinel.errors import EventDecodeError
from coi_sentinel.events import codec, model, structs, types
from coi_sentinel.events.decode import Decoder

pytestmark = pytest.mark.unit


def hdr(obj, etype, pid=100, comm=b"bash"):
    obj.hdr.ts_ns = 123456789
    obj.hdr.cgroup_id = 77
    obj.hdr.scope_id = 66
    obj.hdr.type = etype
    obj.hdr.pid = pid
    obj.hdr.tid = pid + 1
    obj.hdr.ppid = 1
    obj.hdr.uid = 1000
    obj.hdr.gid = 1000
    obj.hdr.comm = comm
    return obj


def put(obj, field: str, data: bytes) -> None:
    """Copy raw bytes (NULs included) into a char array field; ctypes assignment stops at NUL."""
    arr = getattr(type(obj), field)
    ctypes.memset(ctypes.addressof(obj) + arr.offset, 0, arr.size)
    ctypes.memmove(ctypes.addressof(obj) + arr.offset, data, len(data))


def decode(obj) -> model.Event:
    return Decoder(lambda sid: {66: "agent-1"}.get(sid, "host")).decode(bytes(obj))


def test_exec_record():
    e = hdr(structs.ExecEvent(), types.EventType.EXEC)
    args = b"/bin/sh\0-c\0echo hi\0"
    put(e, "args", args)
    e.args_len = len(args)
    e.argc = 3
    e.filename = b"/usr/bin/dash"
    e.fd = -100
    e.flags = types.EXEC_VIA_FD | types.EXEC_FROM_MEMFD
    ev = decode(e)
    assert isinstance(ev, model.ExecEvent)
    assert ev.argv == ("/bin/sh", "-c", "echo hi") and ev.filename == "/usr/bin/dash"
    assert ev.container == "agent-1" and ev.comm == "bash" and ev.pid == 100 and ev.tid == 101
    assert ev.from_memfd and ev.via_fd and not ev.args_truncated and ev.errno == 0


def test_failed_exec_and_truncation():
    e = hdr(structs.ExecEvent(), types.EventType.EXEC)
    e.ret = -errno.ENOENT
    e.argc = 40
    e.args = b"a\0"
    e.args_len = 2
    ev = decode(e)
    assert ev.errno == errno.ENOENT and ev.args_truncated and ev.argv == ("a",)


def test_connect_inet_inet6_unix():
    c = hdr(structs.ConnectEvent(), types.EventType.CONNECT)
    c.ret = -errno.ENETUNREACH
    c.sock.family = types.AF_INET
    c.sock.port = 80
    c.sock.addr[:4] = list(socket.inet_aton("169.254.169.254"))
    ev = decode(c)
    assert (ev.family, ev.daddr, ev.dport, ev.errno) == ("inet", "169.254.169.254", 80, errno.ENETUNREACH)
    c.sock.family = types.AF_INET6
    c.sock.addr[:] = list(socket.inet_pton(socket.AF_INET6, "fd00:ec2::254"))
    assert decode(c).daddr == "fd00:ec2::254"
    c.sock.family = types.AF_UNIX
    c.unix_path = b"/run/docker.sock"
    assert decode(c).daddr == "/run/docker.sock"
    put(c, "unix_path", b"\0abstract")
    assert decode(c).daddr == "@abstract"


def test_dup_and_priv_and_paths():
    d = hdr(structs.DupEvent(), types.EventType.DUP)
    d.oldfd, d.newfd, d.flags = 3, 0, types.DUP_OLDFD_SOCKET
    d.sock.family, d.sock.port = types.AF_INET, 4444
    d.sock.addr[:4] = [127, 0, 0, 1]
    ev = decode(d)
    assert ev.is_socket and (ev.daddr, ev.dport, ev.newfd) == ("127.0.0.1", 4444, 0)
    p = hdr(structs.PrivEvent(), types.EventType.PRIV)
    p.op = types.PrivOp.MOUNT
    p.str = b"/mnt"
    assert (decode(p).op, decode(p).detail) == ("mount", "/mnt")
    ch = hdr(structs.PathEvent(), types.EventType.CHMOD)
    ch.mode = 0o4755
    ch.path = b"/workspace/x"
    ev = decode(ch)
    assert isinstance(ev, model.ChmodEvent) and ev.sets_setuid and not ev.sets_setgid


def test_exec_env_strings_follow_argv_and_utime_times_decode():
    ex = hdr(structs.ExecEvent(), types.EventType.EXEC)
    strings = b"/bin/true\0x\0LD_PRELOAD=/w/l.so\0LD_AUDIT=/a.so\0"
    put(ex, "args", strings)
    ex.args_len, ex.argc, ex.envc = len(strings), 2, 2
    ev = decode(ex)
    assert ev.argv == ("/bin/true", "x") and ev.env == ("LD_PRELOAD=/w/l.so", "LD_AUDIT=/a.so")
    assert ev.ld_preload == "/w/l.so"
    ut = hdr(structs.UtimeEvent(), types.EventType.UTIME)
    ut.fd, ut.how, ut.atime, ut.mtime, ut.path = -100, types.UTIME_SET_MTIME | types.UTIME_BACKDATED, 5, 1577836800, b"/w/f"
    ev = decode(ut)
    assert (ev.path, ev.atime, ev.mtime, ev.backdated) == ("/w/f", -1, 1577836800, True)


def test_bad_records_raise_decode_errors():
    with pytest.raises(EventDecodeError, match="shorter than the event header"):
        Decoder().decode(b"\0" * 10)
    bad = hdr(structs.ExitEvent(), 99)
    with pytest.raises(EventDecodeError, match="unknown event type 99"):
        Decoder().decode(bytes(bad))
    short = bytes(hdr(structs.ExecEvent(), types.EventType.EXEC))[:200]
    with pytest.raises(EventDecodeError, match="bad exec record"):
        Decoder().decode(short)


def _samples() -> list[model.Event]:
    h = (1, 2, 3, 4, 5, 6, "c", 7, 8, "host")
    return [
        model.ExecEvent(*h, "/bin/true", ("true", "x"), 2, 0, -100, 0),
        model.ExecEvent(*h, "/bin/true", ("true",), 1, 0, -100, 0, ("LD_PRELOAD=/x.so",)),
        model.ConnectEvent(*h, 3, "inet", "1.2.3.4", 53, 0, False, True),
        model.ForkEvent(*h, 9, 0x11),
        model.ExitEvent(*h, -1, 9),
        model.ConnectEvent(*h, 3, "inet", "1.2.3.4", 443, 0),
        model.ConnectRepeatEvent(*h, "inet", "1.2.3.4", 443, 111, 5, 1),
        model.DupEvent(*h, 3, 0, 0, True, "inet", "1.2.3.4", 443),
        model.DupEvent(*h, 3, 0, 0, False, "", "", 0, False, "pipe", 77, "read"),
        model.NetSendEvent(*h, 3, 100, 2, "inet", "1.2.3.4", 443, 1),
        model.FileOpenEvent(*h, "/x", 577, 0o644, 3, 0, "write", -100),
        model.FileWriteEvent(*h, "/x", "write", 1, 2, 3, False, 1),
        model.RenameEvent(*h, "/a", "/b", 0, 0),
        model.UnlinkEvent(*h, "/a", -100, 0, 0),
        model.ChmodEvent(*h, "/a", -100, 0o755, 0),
        model.PrivEvent(*h, "ptrace", 16, 42, "", 1),
        model.AcceptEvent(*h, 4, 3, "inet", "10.0.0.2", 40000, 0),
        model.BindEvent(*h, 3, "inet", "0.0.0.0", 4444, 0),
        model.ListenEvent(*h, 3, "inet6", "::", 4444, 5, 0),
        model.UringEvent(*h, "connect", 16, 7, False, True),
        model.LinkEvent(*h, "/a", "/w/.git/hooks/pre-commit", False, 0, 0),
        model.ChdirEvent(*h, "/w/.git", -100, 0),
        model.MmapWriteEvent(*h, 3, "/w/f", 3, 1, 4096),
        model.ChanEvent(*h, "pipe", 3, 4, "pipe", "read", 77, -1, 0),
        model.UtimeEvent(*h, "/w/implant", -100, 0, -1, 1577836800, True, 0),
    ]


def test_every_event_type_has_a_sample():
    assert {type(e) for e in _samples()} == set(model.EVENT_CLASSES.values())


@pytest.mark.parametrize("ev", _samples(), ids=lambda e: e.type.label)
def test_json_round_trip(ev):
    line = codec.dumps(ev)
    assert b"\n" not in line
    assert codec.loads(line) == ev
    assert codec.to_dict(ev)["type"] == ev.type.label


def test_json_errors_name_source_and_line():
    with pytest.raises(EventDecodeError, match=r"^t.jsonl:3: not JSON"):
        codec.loads(b"{nope", source="t.jsonl", lineno=3)
    with pytest.raises(EventDecodeError, match=r"unknown event type 'teleport'"):
        codec.loads(b'{"type": "teleport"}')
    with pytest.raises(EventDecodeError, match=r"exec event lacks field 'ts_ns'"):
        codec.loads(b'{"type": "exec"}')
    with pytest.raises(EventDecodeError, match="must be an object"):
        codec.loads(b"[1]")


def test_a_line_without_a_later_field_reads_with_its_default():
    ev = model.DupEvent(1, 2, 3, 4, 5, 6, "c", 7, 8, "host",
                        3, 0, 0, True, "inet", "1.2.3.4", 443)
    d = codec.to_dict(ev)
    del d["killed"]
    assert codec.from_dict(d) == ev
    del d["oldfd"]
    with pytest.raises(EventDecodeError, match="lacks field 'oldfd'"):
        codec.from_dict(d)
