"""The engine as a pipeline sink: alerts and their JSON form, callbacks, compiled code."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from coi_sentinel.events import model as m
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.rules import Engine, SessionInfo, load_ruleset

pytestmark = pytest.mark.unit


def test_alert_contents_and_json(rules: Any, rule_yaml: Any, ev: Any) -> None:
    rs = rules.load(rule_yaml("t", "proc.is_shell", output="shell %proc.name under %proc.pname (%%)",
                              severity="critical", extra="action: kill"))
    alerts: list = []
    engine = Engine(rs, on_alert=alerts.append, sessions=lambda e: SessionInfo("s-1", "claude", "open"))
    for e in (ev.exec(10, "/usr/bin/node", "node", "agent.js"), ev.fork(10, 11, comm="node"),
              ev.exec(11, "/bin/bash", "bash", "-i", ppid=10)):
        engine.feed(e)
    (a,) = alerts
    assert (a.rule, a.severity.label, a.output, a.kind, a.action) == (
        "t", "critical", "shell bash under node (%)", "event", "kill")
    d = orjson.loads(orjson.dumps(a.to_dict()))
    assert d["type"] == "alert" and d["rule"] == "t" and d["severity"] == "critical"
    assert d["process"] == {"pid": 11, "ppid": 10, "name": "bash", "exe": "/bin/bash", "cmdline": "bash -i",
                            "uid": 1000}
    assert [p["name"] for p in d["ancestry"]] == ["node"]
    assert (d["container"], d["scope_id"], d["session"]) == ("agent-1", 42, {"id": "s-1", "tool": "claude"})
    assert d["tags"] == ["T1059"] and d["action"] == "kill" and d["kind"] == "event"
    assert d["source"] == "syscall" and d["rule_location"] == f"{rules.root}/r1.yaml:1"
    assert d["priority"] == "Critical" and d["output_fields"] == {"proc.name": "bash", "proc.pname": "node"}
    assert d["events"] == [{"type": "exec", **{k: v for k, v in d["events"][0].items() if k != "type"}}]
    assert d["events"][0]["filename"] == "/bin/bash" and d["ts_ns"] == d["events"][0]["ts_ns"]
    assert "value" not in d
    assert str(a) == "CRITICAL t: shell bash under node (%)"


def test_callbacks(rules: Any, rule_yaml: Any, ev: Any) -> None:
    rs = rules.load(rule_yaml("t", "proc.name = a"))
    first: list = []
    second: list = []
    engine = Engine(rs, on_alert=[first.append])
    engine.add_callback(second.append)
    engine.feed(ev.exec(1, "/x/a"))
    assert [a.rule for a in first] == [a.rule for a in second] == ["t"]
    assert Engine(rs).feed(ev.exec(1, "/x/a")) is None          # no callback: nothing breaks


def test_engine_as_a_pipeline_sink(rules: Any, rule_yaml: Any, ev: Any) -> None:
    rs = rules.load(rule_yaml("t", "proc.pname = bash"))
    pipeline = Pipeline()
    alerts: list = []
    engine = Engine(rs, on_alert=alerts.append)
    engine.attach(pipeline)
    for e in (ev.exec(10, "/bin/bash"), ev.fork(10, 11), ev.exec(11, "/bin/ls", ppid=10)):
        pipeline.feed(e)
    assert [a.rule for a in alerts] == ["t"]
    assert engine.table is pipeline.table
    assert [p.pid for p in alerts[0].ancestry] == [10]
    assert engine.stats()["events"] == 3 and engine.stats()["alerts"] == {"t": 1}


def test_only_event_types_with_rules_get_a_function(rules: Any, rule_yaml: Any) -> None:
    rs = rules.load(rule_yaml("t", "'proc.name = a or net.dport = 1'", "[exec, connect]"))
    assert set(rs.match_fns) == {m.ExecEvent, m.ConnectEvent}
    assert "net" not in rs.code[m.ExecEvent.type]                  # folded away on exec


def test_rule_values_never_become_code(rules: Any, rule_yaml: Any, ev: Any, run: Any) -> None:
    evil = "x') or __import__('os').system('true') or ('"
    rs = rules.load(rule_yaml("t", f'"proc.args = \\"{evil}\\""'))
    assert "__import__" not in "".join(rs.code.values())
    r = run(rs)
    assert r.feed(ev.exec(1, "/bin/p", "p", evil), ev.exec(1, "/bin/p", "p", "x")) == ["t"]


def test_costly_fields_are_computed_once_per_event(rules: Any, rule_yaml: Any, ev: Any) -> None:
    rs = rules.load(rule_yaml("a", "proc.name = x") + rule_yaml("b", "proc.name = y")
                    + rule_yaml("c", "'proc.name startswith z'"))
    calls = []
    real = rs.namespace.globals["_basename"]
    rs.namespace.globals["_basename"] = lambda path: calls.append(path) or real(path)
    Engine(rs).feed(ev.exec(1, "/bin/q"))
    assert calls == ["/bin/q"]


def test_empty_and_bundled_sets(tmp_path: Any) -> None:
    empty = load_ruleset([], replace_bundled=True)
    assert len(empty) == 0 and empty.match_fns == {}
    assert Engine(empty).stats()["alerts"] == {}
    bundled = load_ruleset(None)
    assert len(bundled) == len(bundled.rule_ids) >= 35


def test_state_bytes_grow_with_partial_matches_and_stay_bounded(ev: Any) -> None:
    from coi_sentinel.rules import Limits

    engine = Engine(load_ruleset(None), limits=Limits(sequence_keys=64))
    base = engine.state_bytes()
    for pid in range(1000, 1400):
        engine.feed(ev.open(pid, "/home/code/.ssh/id_rsa", comm="cat", ppid=pid - 1000 + 2))
    stats = engine.stats()["sequences"]["exfil_secret_read_then_connect"]
    assert stats["keys"] == 64 and stats["evicted_keys"] == 400 - 64
    assert base < engine.state_bytes() < 1_000_000


def test_a_failing_lookup_or_callback_does_not_stop_the_engine(rules: Any, rule_yaml: Any, ev: Any) -> None:
    rs = rules.load(rule_yaml("s", "session.tool = claude") + rule_yaml("t", "proc.name = a"))

    def lookup(event: Any) -> Any:
        if event.pid == 1:
            raise RuntimeError("session layer hiccup")
        return SessionInfo("x", "claude")

    got: list = []

    def broken(alert: Any) -> None:
        raise ValueError("consumer bug")

    engine = Engine(rs, on_alert=[broken, got.append], sessions=lookup)
    engine.feed(ev.exec(1, "/x/a"))           # the session lookup raises: this event is skipped
    engine.feed(ev.exec(2, "/x/a"))
    assert [a.rule for a in got] == ["s", "t"]
    assert engine.stats()["failures"] == 1 and engine.stats()["events"] == 2
