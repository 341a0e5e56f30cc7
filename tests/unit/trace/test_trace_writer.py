"""Writing traces: round trips (plain and gzip), batching and fsync, file safety, write errors,
and a writer killed mid-write."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest

from coi_sentinel.errors import TraceError
from coi_sentinel.events import codec
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.trace import TraceReader, TraceWriter, make_header, read_events, rewrite_header
from coi_sentinel.trace import writer as writer_module

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_round_trip(tmp_path, sample_events, name):
    path = tmp_path / name
    header = make_header("record", coverage={"attached": 30, "missing": 1}, command=["make"])
    with TraceWriter(path, header) as w:
        for ev in sample_events[:10]:
            w.write_event(ev)
        w.write_record({"record": "alert", "rule": "r1", "severity": "high", "type": "not an event"})
        for ev in sample_events[10:]:
            w.write_event(ev)
        w.write_record({"record": "drops", "counts": {"exec": 2}})
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    with TraceReader(path) as r:
        items = list(r)
        assert r.header["source"] == "record" and r.header["command"] == ["make"]
        assert r.header["coverage"] == {"attached": 30, "missing": 1}
        assert r.footer is not None
        assert r.footer["events"] == len(sample_events) and r.footer["records"] == 2
        assert (r.events, r.records, r.skipped_total) == (len(sample_events), 3, 0)
    events = [it for _ln, it in items if not isinstance(it, dict)]
    assert events == sample_events
    records = [it for _ln, it in items if isinstance(it, dict)]
    assert records[0] == {"record": "alert", "rule": "r1", "severity": "high", "type": "not an event"}
    assert [ln for ln, _it in items] == list(range(2, len(sample_events) + 5))


def test_gzip_detected_by_content_not_name(tmp_path, sample_events):
    path = tmp_path / "t.jsonl.gz"
    with TraceWriter(path, make_header("test")) as w:
        for ev in sample_events:
            w.write_event(ev)
    renamed = tmp_path / "renamed.trace"
    path.rename(renamed)
    assert list(read_events([renamed])) == sample_events


def test_lines_are_exactly_the_codec_lines(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, make_header("test")) as w:
        for ev in sample_events:
            w.write_event(ev)
    lines = path.read_bytes().splitlines()
    assert lines[1:-1] == [codec.dumps(ev) for ev in sample_events]
    assert orjson.loads(lines[0])["record"] == "header"


def test_batches_are_written_when_full_or_old(tmp_path, make_event):
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, make_header("test"), batch_records=5, batch_seconds=0.2)
    size0 = path.stat().st_size
    for i in range(4):
        w.write_event(make_event(ts_ns=i))
    assert path.stat().st_size == size0 and w.lines_durable == 1      # header only
    w.write_event(make_event(ts_ns=5))
    assert len(path.read_bytes().splitlines()) == 6 and w.lines_durable == 6
    w.write_event(make_event(ts_ns=6))
    w.tick()
    assert w.lines_durable == 6                                       # not due yet
    time.sleep(0.25)
    w.tick()
    assert w.lines_durable == 7 and len(path.read_bytes().splitlines()) == 7
    w.write_record({"record": "action", "action": "kill"}, sync=True)
    assert w.lines_durable == 8
    w.close()


def test_sink_in_a_pipeline(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    pipe = Pipeline()
    pipe.add_sink(TraceWriter(path, make_header("watch")))
    for ev in sample_events:
        pipe.feed(ev)
    pipe.close()
    assert list(read_events([path])) == sample_events


def test_refuses_to_overwrite_or_follow_symlinks(tmp_path, make_event):
    path = tmp_path / "t.jsonl"
    path.write_text("precious\n")
    with pytest.raises(TraceError, match="already exists"):
        TraceWriter(path, make_header("test"))
    assert path.read_text() == "precious\n"
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(TraceError, match="symbolic link"):
        TraceWriter(link, make_header("test"), overwrite=True)
    assert not (tmp_path / "elsewhere.jsonl").exists()
    with TraceWriter(path, make_header("test"), overwrite=True) as w:
        w.write_event(make_event())
    assert list(read_events([path])) == [make_event()]


def test_record_validation(tmp_path):
    with TraceWriter(tmp_path / "t.jsonl", make_header("test")) as w:
        with pytest.raises(ValueError, match="kind"):
            w.write_record({"rule": "x"})
        with pytest.raises(ValueError, match="kind"):
            w.write_record({"record": "header"})
        with pytest.raises(ValueError, match="reserved"):
            w.write_record({"record": "alert", "_h": "forged"})
        with pytest.raises(ValueError, match="alert record: .*not JSON serializable"):
            w.write_record({"record": "alert", "x": object()})
        w.write_record({"record": "alert", "path": tmp_path, "tags": {"b", "a"}})
    with TraceReader(tmp_path / "t.jsonl") as r:
        (_ln, rec), _footer = list(r)
    assert rec == {"record": "alert", "path": str(tmp_path), "tags": ["a", "b"]}


def test_undecodable_bytes_are_escaped_not_fatal(tmp_path, make_event):
    path = tmp_path / "t.jsonl"
    weird = make_event(argv=("cat", "caf\udce9.txt"), filename="/bin/cat")
    with TraceWriter(path, make_header("test")) as w:
        w.write_event(weird)
        w.write_event(make_event())
    got = list(read_events([path]))
    assert got[0].argv == ("cat", "caf\\xe9.txt") and got[1] == make_event()


def test_rewrite_header(tmp_path, sample_events):
    for name in ("t.jsonl", "t.jsonl.gz"):
        path = tmp_path / name
        with TraceWriter(path, make_header("record")) as w:
            for ev in sample_events:
                w.write_event(ev)
        rewrite_header(path, drops={"exec": 4})
        with TraceReader(path) as r:
            assert r.header["drops"] == {"exec": 4}
            assert list(r.iter_events()) == sample_events
        assert (path.stat().st_mode & 0o777) == 0o600
        assert [p.name for p in tmp_path.iterdir() if "rewrite" in p.name] == []
    with pytest.raises(ValueError):
        rewrite_header(path, schema=2)


def test_disk_full_on_dev_full():
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(TraceError) as exc:
            TraceWriter("/dev/full", make_header("test"), fd=fd)
        assert exc.value.errno == errno.ENOSPC and exc.value.reason == "write"
        assert "no space left" in str(exc.value)
    finally:
        os.close(fd)


class FailingDisk:
    """os.write for one fd: lets ``budget`` bytes through, then ENOSPC until ``free()``."""

    def __init__(self, monkeypatch, fd: int, budget: int) -> None:
        self.fd, self.budget, self.full = fd, budget, True
        self._real = os.write
        monkeypatch.setattr(writer_module.os, "write", self)

    def __call__(self, fd, data):
        if fd != self.fd or not self.full:
            return self._real(fd, data)
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self._real(fd, bytes(data[: self.budget]))
        self.budget -= n
        return n

    def free(self) -> None:
        self.full = False


def test_write_error_keeps_lines_and_resumes_at_the_exact_byte(tmp_path, monkeypatch, sample_events):
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, make_header("test"), batch_records=4, retry_seconds=0.0)
    disk = FailingDisk(monkeypatch, w._out.fd, budget=250)          # stops inside a line
    with pytest.raises(TraceError) as exc:
        for ev in sample_events[:4]:
            w.write_event(ev)
    assert exc.value.errno == errno.ENOSPC and w.error is not None
    with pytest.raises(TraceError):
        w.write_event(sample_events[4])                              # retried, fails again
    disk.free()
    for ev in sample_events[5:]:
        w.write_event(ev)
    w.close()
    assert w.error is None
    with TraceReader(path) as r:
        items = [it for _ln, it in r]
    assert [it for it in items if not isinstance(it, dict)] == sample_events
    notes = [it for it in items if isinstance(it, dict) and it["record"] == "monitor"]
    assert len(notes) == 1 and notes[0]["errno"] == "ENOSPC" and notes[0]["lost"] == 0


def test_backlog_bound_counts_lost_lines(tmp_path, monkeypatch, make_event):
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, make_header("test"), batch_records=1, retry_seconds=3600,
                    max_pending_bytes=2000)
    disk = FailingDisk(monkeypatch, w._out.fd, budget=0)
    with pytest.raises(TraceError):
        w.write_event(make_event(ts_ns=0))
    accepted = [w.write_event(make_event(ts_ns=i)) for i in range(1, 30)]
    assert accepted.count(False) == w.lost > 0                       # refused, not sealed
    kept = accepted.count(True) + 1
    disk.free()
    w.flush()
    w.close()
    with TraceReader(path) as r:
        items = [it for _ln, it in r]
    assert len([it for it in items if not isinstance(it, dict)]) == kept
    drops = [it for it in items if isinstance(it, dict) and it["record"] == "drops"]
    assert drops == [{"record": "drops", "source": "writer", "reason": "ENOSPC", "lost": 29 - kept + 1}]


CHILD = textwrap.dedent("""
    import sys
    from dataclasses import fields
    from coi_sentinel.events import codec, model
    from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL

    def make(**d):   # fields added to the schema later get zero values
        for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[d["type"]]]):
            d.setdefault(f.name, {"int": 0, "str": "", "bool": False}.get(str(f.type), ()))
        return codec.from_dict(d)
    from coi_sentinel.trace import TraceWriter, make_header
    w = TraceWriter(sys.argv[1], make_header("test"), batch_records=100)
    i, durable = 0, 0
    while True:
        w.write_event(make(**{"type": "exit", "ts_ns": i, "pid": i, "tid": i, "ppid": 1,
            "uid": 0, "gid": 0, "comm": "x" * 15, "cgroup_id": 1, "scope_id": 1,
            "container": "c", "exit_code": 0, "signal": 0}))
        i += 1
        if w.lines_durable != durable:
            durable = w.lines_durable
            print(durable, flush=True)
""")


@pytest.mark.parametrize("name", ["killed.jsonl", "killed.jsonl.gz"])
def test_sigkill_mid_write_keeps_every_fsynced_batch(tmp_path, name):
    path = tmp_path / name
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True)
    durable = 0
    assert child.stdout is not None
    while durable < 3001:
        durable = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    with TraceReader(path, lenient=True) as r:
        events = list(r.iter_events())
    assert r.footer is None and set(r.skipped) <= {"truncated"}
    assert len(events) >= durable - 1                                # header is a line
    assert [ev.ts_ns for ev in events] == list(range(len(events)))
