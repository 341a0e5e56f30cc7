"""The audit log: permissions, durability of alerts, rotation across files, retention, restarts."""

from __future__ import annotations

import errno
import os
import stat
import time

import orjson
import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy, verify
from coi_sentinel.audit.files import read_tail, rotated_files, session_log_path
from coi_sentinel.audit.policy import parse_duration, parse_size
from coi_sentinel.errors import AuditDiskFull, AuditError
from coi_sentinel.trace import TraceReader, TraceWriter, make_header, read_events, writer

pytestmark = pytest.mark.unit


def records(paths, kind):
    out = []
    for path in paths:
        with TraceReader(path) as r:
            out += [it for _ln, it in r if isinstance(it, dict) and it["record"] == kind]
    return out


def test_modes(tmp_path, fast_policy, make_event):
    path = tmp_path / "logs" / "deep" / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        log.write_event(make_event(0))
        log.rotate()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for f in log.files():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_alerts_and_actions_are_on_disk_when_written(tmp_path, make_event):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, make_header("test"), policy=AuditPolicy(batch_records=1000, batch_seconds=60))
    for i in range(5):
        log.write_event(make_event(i))
    assert len(path.read_bytes().splitlines()) == 1                 # events still batched
    log.write_alert({"rule": "r", "severity": "low"})
    on_disk = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [d.get("record", d.get("type")) for d in on_disk] == ["header"] + ["exec"] * 5 + ["alert"]
    assert on_disk[-1]["time"].endswith("Z")
    log.write_action({"action": "kill", "pid": 4})
    assert orjson.loads(path.read_bytes().splitlines()[-1])["action"] == "kill"
    log.close()
    assert verify([path]).ok


def test_rotation_by_size_across_three_files(tmp_path, make_event):
    path = tmp_path / "audit.jsonl"
    policy = AuditPolicy(fsync=False, max_bytes=8192, max_age=None, retention=None)
    events = [make_event(i) for i in range(100)]
    with AuditLog(path, make_header("watch"), policy=policy) as log:
        for ev in events:
            log.write_event(ev)
    files = log.files()
    assert len(files) >= 3 and files[-1] == path
    assert [n for n, _p in rotated_files(path)] == list(range(1, len(files)))
    for f in files[:-1]:
        assert 8192 <= f.stat().st_size < 8192 + 1024
    report = verify(files)
    assert report.ok and report.notes == []
    chains = [(s.chain_id, s.index) for s in report.segments]
    assert len({c for c, _i in chains}) == 1 and [i for _c, i in chains] == list(range(len(files)))
    assert list(read_events(files)) == events                        # replay across the files
    footers = records(files, "footer")
    assert [f["reason"] for f in footers] == ["rotate"] * (len(files) - 1) + ["close"]


def test_rotation_by_age(tmp_path, make_event):
    path = tmp_path / "audit.jsonl"
    policy = AuditPolicy(fsync=False, max_bytes=None, max_age=0.05, retention=None)
    with AuditLog(path, make_header("watch"), policy=policy) as log:
        log.write_event(make_event(0))
        log.tick()
        assert len(log.files()) == 1
        time.sleep(0.06)
        log.tick()
        assert len(log.files()) == 2
        log.write_event(make_event(1))
    assert verify(log.files()).ok
    assert list(read_events(log.files())) == [make_event(0), make_event(1)]


def test_retention_removes_old_rotated_files_only(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        for i in range(4):
            log.write_event(make_event(i))
            log.rotate()
    files = log.files()
    assert len(files) == 5
    old = time.time() - 10 * 86400
    for f in files[:2]:
        os.utime(f, (old, old))
    policy = AuditPolicy(fsync=False, max_bytes=None, max_age=None, retention=5 * 86400)
    with AuditLog(path, make_header("test"), policy=policy) as log:
        log.write_event(make_event(9))
    remaining = log.files()
    assert [f.name for f in remaining] == [f.name for f in files[2:-1]] + ["audit.000005.jsonl", path.name]
    (note,) = records(remaining, "monitor")
    assert note["event"] == "retention" and note["removed"] == [files[0].name, files[1].name]
    report = verify(remaining)
    assert report.ok
    assert [n.kind for n in report.notes] == ["chain-start"]


def test_restart_continues_the_chain(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    for run in range(3):
        with AuditLog(path, make_header("watch"), policy=fast_policy) as log:
            log.write_event(make_event(run))
    files = log.files()
    assert [f.name for f in files] == ["audit.000001.jsonl", "audit.000002.jsonl", "audit.jsonl"]
    report = verify(files)
    assert report.ok and report.notes == []
    with TraceReader(path) as r:
        chain = r.header["chain"]
    assert chain["file"] == 2 and chain["prev_file"] == "audit.000002.jsonl"
    assert chain["prev_end"] == {"closed": True, "partial": False}


def test_restart_after_a_crash_mid_line(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, make_header("watch"), policy=fast_policy)
    for i in range(5):
        log.write_event(make_event(i))
    log.flush()
    with open(path, "ab") as f:                                      # what a killed write leaves
        f.write(b'{"type":"exec","ts_ns":12')
    problem = verify([path]).problems[0]
    assert (problem.kind, problem.line) == ("truncated", 7)
    log2 = AuditLog(path, make_header("watch"), policy=fast_policy)
    log2.write_event(make_event(5))
    log2.close()
    with TraceReader(path) as r:
        assert r.header["chain"]["prev_end"] == {"closed": False, "partial": True}
    report = verify(log2.files())
    assert report.ok, report.problems
    assert [(n.kind, n.line) for n in report.notes] == [("resumed", 7)]
    assert len(list(read_events(log2.files()[-1:]))) == 1


def test_restart_when_the_last_file_is_unusable_starts_a_new_chain(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("watch"), policy=fast_policy) as log:
        log.write_event(make_event(0))
    data = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(data[:-1]) + b'{"garbage": true}\n')
    with AuditLog(path, make_header("watch"), policy=fast_policy) as log:
        log.write_event(make_event(1))
    with TraceReader(path) as r:
        chain = r.header["chain"]
    assert chain["file"] == 0 and chain["prev"] is None
    assert chain["prev_error"] == "its last complete line has no chain hash"


def test_refuses_foreign_active_file_and_gzip(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"my": "notes"}\n')
    with pytest.raises(AuditError, match="not a coi-sentinel audit log"):
        AuditLog(path, make_header("watch"))
    assert path.read_text() == '{"my": "notes"}\n'
    plain = tmp_path / "plain.jsonl"
    TraceWriter(plain, make_header("record")).close()
    with pytest.raises(AuditError, match="not a coi-sentinel audit log"):
        AuditLog(plain, make_header("watch"))
    with pytest.raises(AuditError, match="uncompressed"):
        AuditLog(tmp_path / "a.jsonl.gz", make_header("watch"))


@pytest.mark.parametrize("left", [b"", b'{"record":"header","schema":1,"kind":"coi-sen'])
def test_active_file_without_a_complete_header_is_replaced(tmp_path, fast_policy, make_event, left):
    path = tmp_path / "audit.jsonl"
    path.write_bytes(left)
    with AuditLog(path, make_header("watch"), policy=fast_policy) as log:
        log.write_event(make_event(0))
    assert log.files() == [path] and verify([path]).ok


def test_a_header_that_cannot_be_written_leaves_no_file(tmp_path, fast_policy, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.os, "write", full)
    with pytest.raises(AuditDiskFull):
        AuditLog(tmp_path / "audit.jsonl", make_header("watch"), policy=fast_policy)
    assert list(tmp_path.iterdir()) == []


def test_events_none_writes_records_only(tmp_path, fast_policy, make_event):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("run"), policy=fast_policy, events="none") as log:
        log.write_event(make_event(0))
        log.write_record({"record": "coverage", "attached": 31})
    assert list(read_events([path])) == []
    assert records([path], "coverage")[0]["attached"] == 31


def test_tail_of_a_closed_file(closed_log):
    tail = read_tail(closed_log)
    assert tail.closed and not tail.partial and tail.last_n == 23 and tail.index == 0


def test_session_log_path(tmp_path):
    assert session_log_path("agent-1", tmp_path) == tmp_path / "agent-1.jsonl"
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(AuditError):
            session_log_path(bad, tmp_path)


def test_policy_from_mapping():
    p = AuditPolicy.from_mapping({"max_bytes": "16MiB", "max_age": "12h", "retention": "30d",
                                  "batch_records": "64", "context_seconds": "90s",
                                  "context_severity": "critical", "fsync": False})
    assert (p.max_bytes, p.max_age, p.retention) == (16 << 20, 43200.0, 30 * 86400.0)
    assert (p.batch_records, p.context_seconds, p.context_severity, p.fsync) == (64, 90.0, "critical", False)
    assert AuditPolicy.from_mapping({"retention": None}).retention is None
    with pytest.raises(ValueError, match="unknown audit settings: colour"):
        AuditPolicy.from_mapping({"colour": "red"})
    assert parse_size("512KiB") == 512 << 10 and parse_size("1GiB") == 1 << 30 and parse_size(4096) == 4096
    assert parse_size("50MB") == 50 * 10**6                  # one grammar with the rules'
    with pytest.raises(ValueError, match="64MB = 64\\*10\\^6 or 64MiB = 64\\*2\\^20"):
        parse_size("64M")
    assert parse_duration("2w") == 14 * 86400 and parse_duration(5) == 5.0
    for bad in ("12 parsecs", "1x"):
        with pytest.raises(ValueError):
            parse_size(bad)
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_an_alert_is_encoded_once_for_the_log_and_everyone_after_it(tmp_path, monkeypatch):
    """The audit log writes the alert's own JSON (records.dumps), which keeps its bytes for the
    terminal and the outputs that follow: one encoding of the alert in all."""
    from coi_sentinel import records as recs
    from coi_sentinel.records import AlertRecord
    from coi_sentinel.severity import Severity

    rec = AlertRecord(rule="reverse_shell", severity=Severity.CRITICAL, output="a shell",
                      time="2026-12-03T00:00:00Z", hostname="h", ts_ns=7,
                      output_fields={"proc.name": "sh", "fd.rport": 4444})
    encoded = []
    real = recs.to_dict
    monkeypatch.setattr(recs, "to_dict", lambda r: encoded.append(r) or real(r))
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=AuditPolicy(batch_records=1000)) as log:
        log.write_alert(rec)
        line = path.read_bytes().splitlines()[-1]
        assert line.startswith(recs.dumps(rec)[:-1] + b',"_n":')     # those bytes, then the seal
    assert encoded == [rec]
    assert verify([path]).ok
    [line] = records([path], "alert")
    assert line["rule"] == "reverse_shell" and line["output_fields"] == {"proc.name": "sh", "fd.rport": 4444}
