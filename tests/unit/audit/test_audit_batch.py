"""The audit log in the event path's batches: a batch's fsync runs in the writer's thread;
event lines on stdout are written per batch, an alert line at once, in order."""

from __future__ import annotations

import io

import orjson
import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy, verify
from coi_sentinel.audit import head as head_mod
from coi_sentinel.events import codec
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.trace import make_header

from .conftest import event

pytestmark = pytest.mark.unit


def test_batches_synced_in_the_background_become_durable_in_order(tmp_path):
    path = tmp_path / "s.jsonl"
    policy = AuditPolicy(batch_records=10, max_bytes=None, max_age=None, retention=None)
    log = AuditLog(path, make_header("test"), policy=policy)
    try:
        for i in range(95):
            log.write_event(event(i))
            assert log.writer.lines_durable <= log.writer.lines_accepted
        log.flush()                                           # waits for the disk
        assert log.writer.lines_durable == log.writer.lines_accepted == 96
        assert head_mod.read(tmp_path / "s.head")["n"] == 95
    finally:
        log.close()
    report = verify([path])
    assert report.ok and report.segments[0].lines == 97     # header, 95 events, footer


def test_event_lines_go_out_per_batch_and_an_alert_line_at_once_after_them():
    out = io.BytesIO()
    lines = codec.JsonLines(out)
    pipeline = Pipeline()
    pipeline.add_sink(lines)
    pipeline.feed(event(1))
    pipeline.feed(event(2))
    assert out.getvalue() == b""
    lines.write_line(b'{"type":"alert"}')
    pipeline.feed(event(3))
    pipeline.end_batch()
    got = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert [d.get("pid") for d in got] == [1001, 1002, None, 1003]
    assert got[2] == {"type": "alert"}
    assert [codec.loads(x) for x in out.getvalue().splitlines() if b'"alert"' not in x] == \
        [event(1), event(2), event(3)]
