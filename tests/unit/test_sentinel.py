"""The sentinel's one order, through the real pieces (pipeline, engine, responder, audit log,
an output set in this process): act, then fsync the alert and then the action, then tell."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from output_support import RULES, exec_event

from coi_sentinel.action import Action
from coi_sentinel.audit.log import AuditLog
from coi_sentinel.outputs import OutputSet, parse_url
from coi_sentinel.outputs.cli import AlertSinks
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.records import ActionRecord, AlertRecord, MonitorRecord
from coi_sentinel.respond.policy import ActionPolicy
from coi_sentinel.respond.responder import Responder, Target
from coi_sentinel.rules import load_ruleset
from coi_sentinel.sentinel import Lane, Listener, Sentinel
from coi_sentinel.trace import make_header

pytestmark = pytest.mark.unit


def _records(path: Path) -> list[dict]:
    return [d for d in (orjson.loads(x) for x in path.read_bytes().splitlines()) if "record" in d]


class Source:
    """A source as replay has it: a pipeline fed by hand."""

    def __init__(self) -> None:
        self.pipeline = Pipeline()


class Witness(Listener):
    """What the audit log held when each step was told."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[str, list[str]]] = []

    def kinds(self) -> list[str]:
        return [d["record"] for d in _records(self.path) if d["record"] in ("alert", "action")]

    def event(self, event, process) -> None:
        self.seen.append(("event", self.kinds()))

    def alert(self, alert, record) -> None:
        assert isinstance(record, AlertRecord)
        self.seen.append(("alert", self.kinds()))

    def action(self, record) -> None:
        assert isinstance(record, ActionRecord)
        self.seen.append(("action", self.kinds()))


def test_act_then_fsync_the_alert_then_the_action_then_tell(tmp_path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES.format(severity="high"))
    ruleset = load_ruleset([rules], replace_bundled=True)
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditLog(audit_path, make_header("test"), events="all")
    source = Source()
    # a high alert pauses; the target's cgroup does not exist, so the pause fails - on the record
    responder = Responder(ActionPolicy(), source.pipeline.table)
    responder.add_target(Target("agent-1", tmp_path / "no-such-cgroup"))
    at_act: list[list[str]] = []
    witness = Witness(audit_path)
    responder.on_action.append(lambda _rec: at_act.append(witness.kinds()))
    out = tmp_path / "alerts.jsonl"
    sinks = AlertSinks(OutputSet([parse_url(f"file:{out}")], process=False), None, "json")
    sinks.outputs.start()
    lane = Sentinel(source).add(Lane(source.pipeline.table, ruleset=ruleset, responder=responder,
                                     log=audit, outputs=[sinks], listeners=[witness]))
    source.pipeline.feed(exec_event(7, "/bin/sh", "sh", "-c", "id"))
    status = lane.close(drops={"exec": 2}, stop=MonitorRecord("stop"))

    assert at_act == [[]]                      # the responder acted before anything was written
    assert witness.seen == [("event", []), ("alert", ["alert"]), ("action", ["alert", "action"])]
    recs = _records(audit_path)
    # the end: the outputs flushed (their status), the drops, the stop record, the log closed
    assert [d["record"] for d in recs] == ["header", "alert", "action", "outputs", "drops", "monitor",
                                           "footer"]
    [alert] = [d for d in recs if d["record"] == "alert"]
    [action] = [d for d in recs if d["record"] == "action"]
    assert action["action"] == Action.PAUSE.value and action["ok"] is False
    # one record per alert: the output got the audit log's, same time
    [sent] = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert sent == {k: v for k, v in alert.items() if k not in ("_n", "_h")}     # less the chain's seal
    assert status is not None and status[f"file:{out}"]["delivered"] == 1


def test_an_alert_no_action_came_of_is_in_the_file_when_told_and_fsyncd_at_the_batch_end(
        tmp_path, monkeypatch) -> None:
    """The guarantee kept for an alert without an action: written to the file (a crash of the
    sentinel cannot lose it) before it is told; fsync'd at the end of its batch, in the
    writer's thread (the event loop does not wait for the disk)."""
    import time

    from coi_sentinel.trace import writer as writer_mod

    rules = tmp_path / "r.yaml"
    rules.write_text(RULES.format(severity="low"))          # low: the policy's action is none
    ruleset = load_ruleset([rules], replace_bundled=True)
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditLog(audit_path, make_header("test"), events="all")
    synced: list[list[str]] = []             # what the file held at each fsync, alerts and actions
    witness = Witness(audit_path)
    real_fsync = writer_mod._fsync

    def fsync(fd: int) -> None:
        synced.append(witness.kinds())
        real_fsync(fd)

    monkeypatch.setattr(writer_mod, "_fsync", fsync)
    source = Source()
    responder = Responder(ActionPolicy(), source.pipeline.table)
    responder.add_target(Target("agent-1", tmp_path / "no-such-cgroup"))
    Sentinel(source).add(Lane(source.pipeline.table, ruleset=ruleset, responder=responder, log=audit,
                              listeners=[witness]))
    source.pipeline.feed(exec_event(7, "/bin/sh", "sh", "-c", "id"))

    assert witness.seen == [("event", []), ("alert", ["alert"])]    # in the file when told ...
    assert ["alert"] not in synced                                  # ... its fsync not waited for
    w = audit.writer
    assert w.lines_durable < w.lines_accepted
    source.pipeline.end_batch()                                     # the batch is handled
    deadline = time.monotonic() + 10
    while w.lines_durable < w.lines_accepted and time.monotonic() < deadline:
        time.sleep(0.01)
        audit.tick()
    assert w.lines_durable == w.lines_accepted
    assert ["alert"] in synced
    audit.close()
    assert [d["record"] for d in _records(audit_path)] == ["header", "alert", "footer"]
