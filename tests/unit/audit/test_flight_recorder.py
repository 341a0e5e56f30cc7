"""The flight recorder's bounds, and the context it writes to the audit log."""

from __future__ import annotations

import enum

import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy, FlightRecorder, verify
from coi_sentinel.audit import severity
from coi_sentinel.audit.query import collect
from coi_sentinel.events.model import Event
from coi_sentinel.trace import TraceReader, make_header

pytestmark = pytest.mark.unit

SCOPE_A, SCOPE_B = 700, 800         # conftest.event()'s default scope, and another


def test_time_bound_uses_event_time(make_event):
    rec = FlightRecorder(seconds=0.010, max_events=1000)
    for i in range(50):                                  # one event per ms
        rec.add(make_event(i))
    kept = rec.peek(SCOPE_A)
    assert [ev.ts_ns for ev in kept] == [make_event(i).ts_ns for i in range(39, 50)]


def test_count_bound_and_overflow(make_event):
    rec = FlightRecorder(seconds=60, max_events=5)
    for i in range(12):
        rec.add(make_event(i))
    ctx = rec.take(SCOPE_A)
    assert [ev.pid for ev in ctx.events] == [make_event(i).pid for i in range(7, 12)]
    assert ctx.overflow == 7 and not ctx.complete


def test_events_aged_out_are_not_overflow(make_event):
    rec = FlightRecorder(seconds=0.0015, max_events=3)     # the window holds 2 events
    for i in range(10):
        rec.add(make_event(i))
    ctx = rec.take(SCOPE_A)
    assert len(ctx.events) == 2 and ctx.complete


def test_scope_bound(make_event):
    rec = FlightRecorder(seconds=60, max_events=10, max_scopes=2)
    rec.add(make_event(0, scope=1))
    rec.add(make_event(1, scope=2))
    rec.add(make_event(2, scope=1))                      # scope 1 is now the most recent
    rec.add(make_event(3, scope=3))
    assert sorted(rec.scopes()) == [1, 3] and rec.evicted_scopes == 1
    assert len(rec) == 3


def test_take_empties_and_scopes_are_separate(make_event):
    rec = FlightRecorder()
    for i in range(6):
        rec(make_event(i, scope=SCOPE_A if i % 2 else SCOPE_B))
    first = rec.take(SCOPE_A)
    assert [ev.scope_id for ev in first.events] == [SCOPE_A] * 3
    assert rec.take(SCOPE_A).events == []
    rec.add(make_event(10))
    assert [ev.pid for ev in rec.take(SCOPE_A).events] == [make_event(10).pid]
    assert len(rec.peek(SCOPE_B)) == 3


def test_bounds_must_be_positive():
    for kw in ({"seconds": 0}, {"max_events": 0}, {"max_scopes": 0}):
        with pytest.raises(ValueError):
            FlightRecorder(**kw)


def _log_items(path):
    with TraceReader(path) as r:
        return [it for _ln, it in r]


def test_high_alert_writes_its_scopes_context_only(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    events = [make_event(i, scope=SCOPE_A if i % 3 else SCOPE_B) for i in range(30)]
    with AuditLog(path, make_header("run"), policy=fast_policy, events="context") as log:
        for ev in events:
            log.write_event(ev)
        log.write_alert({"rule": "reverse_shell", "severity": "high",
                         "event": {"scope_id": SCOPE_A, "pid": 1029}})
        log.write_alert({"rule": "noise", "severity": "medium", "scope_id": SCOPE_B})
        log.write_event(make_event(40))
        log.write_alert({"rule": "again", "severity": "critical", "scope_id": SCOPE_A})
    items = _log_items(path)
    kinds = [it["record"] if isinstance(it, dict) else "event" for it in items]
    a_events = [ev for ev in events if ev.scope_id == SCOPE_A]
    assert kinds == (["context"] + ["event"] * len(a_events) + ["alert", "alert"]
                     + ["context", "event", "alert", "footer"])
    ctx = items[0]
    assert ctx["scope_id"] == SCOPE_A and ctx["events"] == len(a_events) and ctx["overflow"] == 0
    assert (ctx["from_ns"], ctx["to_ns"]) == (a_events[0].ts_ns, a_events[-1].ts_ns)
    assert ctx["rule"] == "reverse_shell"
    assert items[1:1 + len(a_events)] == a_events                # none of scope B
    assert items[-3:-1] == [items[-3], items[-2]] and items[-3] == make_event(40)
    assert verify([path]).ok
    summary = collect([path])
    assert [len(e.context) for e in summary.alerts] == [len(a_events), 0, 1]


@pytest.mark.parametrize("sev, expect_context", [
    ("critical", True), ("HIGH", True), ("error", True), ("medium", False), ("low", False),
    ("warning", False), (None, True), ("made-up", True),
])
def test_context_threshold(tmp_path, make_event, fast_policy, sev, expect_context):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("run"), policy=fast_policy, events="context") as log:
        log.write_event(make_event(0))
        alert = {"rule": "r", "scope_id": SCOPE_A}
        if sev is not None:
            alert["severity"] = sev
        log.write_alert(alert)
    has_context = any(isinstance(it, dict) and it["record"] == "context" for it in _log_items(path))
    assert has_context is expect_context


def test_threshold_is_configurable_and_enums_rank_by_name(tmp_path, make_event):
    class Severity(enum.IntEnum):         # as a rules engine might define it: HIGH == 3
        LOW = 1
        HIGH = 3
        CRITICAL = 4

    assert severity.rank(Severity.HIGH) == severity.HIGH
    assert severity.rank(Severity.LOW) < severity.HIGH
    policy = AuditPolicy(fsync=False, max_bytes=None, retention=None, context_severity="critical")
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("run"), policy=policy, events="context") as log:
        log.write_event(make_event(0))
        log.write_alert({"rule": "r", "scope_id": SCOPE_A, "severity": Severity.HIGH})
        log.write_alert({"rule": "r", "scope_id": SCOPE_A, "severity": Severity.CRITICAL})
    kinds = [it["record"] for it in _log_items(path) if isinstance(it, dict)]
    assert kinds == ["alert", "context", "alert", "footer"]


def test_context_events_replay_as_events(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("run"), policy=fast_policy, events="context") as log:
        for i in range(5):
            log.write_event(make_event(i))
        log.write_alert({"rule": "r", "severity": "high", "scope_id": SCOPE_A})
    with TraceReader(path) as r:
        assert [ev for ev in r.iter_events() if isinstance(ev, Event)] == [make_event(i) for i in range(5)]


def test_recorder_memory_stays_bounded(make_event):
    rec = FlightRecorder(seconds=3600, max_events=50, max_scopes=4)
    for i in range(5000):
        rec.add(make_event(i, scope=i % 9))
    assert len(rec) <= 4 * 50 and len(rec.scopes()) == 4
