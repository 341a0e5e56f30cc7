"""Faults while writing the audit log: a full disk (injected ENOSPC, and a real EFBIG from a file
size limit in a child process), and a writer killed with SIGKILL mid-write."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import textwrap

import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy, verify
from coi_sentinel.errors import AuditDiskFull, TraceError
from coi_sentinel.trace import TraceReader, make_header, read_events

pytestmark = pytest.mark.unit


def _items(paths):
    out = []
    for path in paths:
        with TraceReader(path) as r:
            out += [it for _ln, it in r]
    return out


def test_disk_full_is_reported_once_per_retry_and_nothing_is_lost(tmp_path, make_event, failing_disk):
    path = tmp_path / "audit.jsonl"
    policy = AuditPolicy(fsync=False, batch_records=5, retry_seconds=3600, max_bytes=None,
                         max_age=None, retention=None)
    log = AuditLog(path, make_header("run"), policy=policy)
    disk = failing_disk(log.writer._out.fd, budget=700)           # stops inside a line
    with pytest.raises(AuditDiskFull) as exc:
        for i in range(5):
            log.write_event(make_event(i))
    err = exc.value
    assert err.errno == errno.ENOSPC and err.path == str(path) and log.disk_full
    assert "no space left (ENOSPC)" in str(err) and err.hint
    for i in range(5, 20):                                        # buffered, no retry yet
        log.write_event(make_event(i))
    with pytest.raises(AuditDiskFull):                             # an alert tries at once
        log.write_alert({"rule": "r", "severity": "high"})
    disk.free()
    log.flush()
    assert not log.disk_full
    log.close()
    assert verify([path]).ok
    items = _items([path])
    assert [it for it in items if not isinstance(it, dict)] == [make_event(i) for i in range(20)]
    kinds = [it["record"] for it in items if isinstance(it, dict)]
    assert kinds == ["alert", "monitor", "footer"]
    monitor = items[-2]
    assert monitor["event"] == "write_error" and monitor["errno"] == "ENOSPC" and monitor["lost"] == 0


def test_disk_full_backlog_is_bounded_and_losses_are_logged(tmp_path, make_event, failing_disk):
    path = tmp_path / "audit.jsonl"
    policy = AuditPolicy(fsync=False, batch_records=1, retry_seconds=3600, max_bytes=None,
                         max_age=None, retention=None, max_pending_bytes=4096)
    log = AuditLog(path, make_header("run"), policy=policy)
    disk = failing_disk(log.writer._out.fd)
    with pytest.raises(AuditDiskFull):
        log.write_event(make_event(0))
    for i in range(1, 100):
        log.write_event(make_event(i))
    lost = log.writer.lost
    assert 0 < lost < 99
    disk.free()
    log.close()
    assert verify([path]).ok                                      # lost lines were never sealed
    items = _items([path])
    assert len([it for it in items if not isinstance(it, dict)]) == 100 - lost
    drops = [it for it in items if isinstance(it, dict) and it["record"] == "drops"]
    assert drops == [{"record": "drops", "source": "writer", "reason": "ENOSPC", "lost": lost}]


FSIZE_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from coi_sentinel.audit import AuditLog, AuditPolicy
    from coi_sentinel.errors import AuditDiskFull
    from dataclasses import fields
    from coi_sentinel.events import codec, model
    from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL

    def make(**d):   # fields added to the schema later get zero values
        for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[d["type"]]]):
            d.setdefault(f.name, {"int": 0, "str": "", "bool": False}.get(str(f.type), ()))
        return codec.from_dict(d)
    from coi_sentinel.trace import make_header

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # write() then fails with EFBIG
    policy = AuditPolicy(batch_records=10, retry_seconds=0, max_bytes=None, max_age=None,
                         retention=None)
    log = AuditLog(sys.argv[1], make_header("run"), policy=policy)
    _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32768, hard))
    errors = []
    for i in range(400):
        ev = make(**{"type": "exit", "ts_ns": i, "pid": i, "tid": i, "ppid": 1, "uid": 0,
                              "gid": 0, "comm": "worker", "cgroup_id": 9, "scope_id": 9,
                              "container": "c", "exit_code": 0, "signal": 0})
        try:
            log.write_event(ev)
        except AuditDiskFull as err:
            errors.append(err.errno)
    full = log.disk_full
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))   # space is back
    log.write_alert({"rule": "r", "severity": "high"})
    recovered = not log.disk_full
    log.close()
    print(json.dumps({"errors": errors, "full": full, "recovered": recovered}))
""")


def test_file_size_limit_in_a_child_process(tmp_path):
    path = tmp_path / "audit.jsonl"
    out = subprocess.run([sys.executable, "-c", FSIZE_CHILD, str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["full"] and result["recovered"]
    assert result["errors"] and set(result["errors"]) == {errno.EFBIG}
    report = verify([path])
    assert report.ok, report.problems
    assert [ev.ts_ns for ev in read_events([path])] == list(range(400))
    monitor = [it for it in _items([path]) if isinstance(it, dict) and it["record"] == "monitor"]
    assert [(m["event"], m["errno"], m["lost"]) for m in monitor] == [("write_error", "EFBIG", 0)]


CRASH_CHILD = textwrap.dedent("""
    import sys
    from coi_sentinel.audit import AuditLog, AuditPolicy
    from dataclasses import fields
    from coi_sentinel.events import codec, model
    from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL

    def make(**d):   # fields added to the schema later get zero values
        for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[d["type"]]]):
            d.setdefault(f.name, {"int": 0, "str": "", "bool": False}.get(str(f.type), ()))
        return codec.from_dict(d)
    from coi_sentinel.trace import make_header

    policy = AuditPolicy(batch_records=500, max_bytes=None, max_age=None, retention=None)
    log = AuditLog(sys.argv[1], make_header("run"), policy=policy)
    i, durable = 0, 0
    while True:
        log.write_event(make(**{"type": "exec", "ts_ns": i, "pid": i, "tid": i, "ppid": 1,
            "uid": 0, "gid": 0, "comm": "make", "cgroup_id": 9, "scope_id": 9, "container": "c",
            "filename": "/usr/bin/cc", "argv": ["cc", "-c", "x" * 200, str(i)], "argc": 4,
            "errno": 0, "fd": -100, "flags": 0}))
        i += 1
        if log.writer.lines_durable != durable:
            durable = log.writer.lines_durable
            print(durable, flush=True)
""")


def test_sigkill_mid_write_then_verify_replay_and_resume(tmp_path):
    path = tmp_path / "audit.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(path)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    durable = 0
    while durable < 5001:
        durable = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    # verify: every complete line is intact; at worst the last line is incomplete
    report = verify([path])
    assert {p.kind for p in report.problems} <= {"truncated"}
    (seg,) = report.segments
    assert not seg.broken and not seg.closed and seg.lines >= durable
    if report.problems:
        (problem,) = report.problems
        assert problem.line == seg.last_line + 1
    else:
        assert [n.kind for n in report.notes] == ["open"]

    # replay what was written: everything fsync'd is there, in order
    with TraceReader(path, lenient=True) as r:
        events = list(r.iter_events())
    assert len(events) == seg.lines - 1 >= durable - 1
    assert [ev.ts_ns for ev in events] == list(range(len(events)))
    if report.problems:
        with pytest.raises(TraceError, match=rf"{path}:{seg.last_line + 1}: truncated"):
            list(read_events([path]))

    # the next run continues the chain and the whole log verifies
    with AuditLog(path, make_header("run"), policy=AuditPolicy(fsync=False)) as log:
        log.write_record({"record": "monitor", "event": "start"})
    report = verify(log.files())
    assert report.ok, report.problems
    assert [n.kind for n in report.notes] == ["resumed"]
