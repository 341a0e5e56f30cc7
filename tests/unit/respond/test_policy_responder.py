"""Action policy and the responder's bookkeeping (no kernel: targets are fake cgroups)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from coi_sentinel.errors import ResponseError
from coi_sentinel.events import model
from coi_sentinel.events.proctable import ProcessTable
from coi_sentinel.respond.policy import Action, ActionPolicy
from coi_sentinel.respond.responder import Responder, Target

pytestmark = pytest.mark.unit


@dataclass
class Sev:
    label: str


@dataclass
class Proc:
    pid: int
    name: str = "sh"
    exe: str = "/bin/sh"
    cmdline: str = "sh -c x"


@dataclass
class FakeAlert:
    rule: str
    severity: Sev
    action: str | None
    container: str
    ts_ns: int
    events: tuple
    process: Proc
    output: str = "something happened"


def alert(rule="r", sev="high", action=None, container="c1", events=(), pid=1):
    import time
    return FakeAlert(rule, Sev(sev), action, container, time.monotonic_ns(), events, Proc(pid))


def test_defaults_overrides_and_caps():
    p = ActionPolicy()
    assert p.decide("x", "high", None) is Action.PAUSE
    assert p.decide("x", "critical", None) is Action.KILL
    assert p.decide("x", "medium", None) is Action.ALERT
    assert p.decide("x", "low", "kill-process") is Action.KILL_PROCESS
    p2 = ActionPolicy.from_config({"high": "alert"}, {"x": "block"})
    assert p2.decide("x", "low", None) is Action.BLOCK
    assert p2.decide("y", "high", None) is Action.ALERT
    watch = ActionPolicy.from_config(allowed={Action.KILL_PROCESS})
    assert watch.decide("x", "critical", None) is Action.ALERT
    assert watch.decide("x", "critical", "kill-process") is Action.KILL_PROCESS


def test_bad_config_is_a_clear_error():
    with pytest.raises(ResponseError, match="unknown action 'nuke'"):
        ActionPolicy.from_config({"high": "nuke"})
    with pytest.raises(ResponseError, match="unknown severity 'severe'"):
        ActionPolicy.from_config({"severe": "pause"})


def test_dedupe_and_paused_stays_paused(tmp_path):
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.freeze").write_text("0")
    (cg / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    paused = []
    r = Responder(ActionPolicy(), ProcessTable())
    r.add_target(Target("c1", cg, on_paused=paused.append))
    records = []
    r.on_action.append(records.append)
    first = r(alert())
    assert first.ok and first.action == "pause" and first.latency_ns > 0
    assert (cg / "cgroup.freeze").read_text() == "1" and len(paused) == 1
    assert r(alert()) is None                      # same rule and container: deduped
    second = r(alert(rule="other"))                # another rule: target already paused
    assert second.skipped == "target already paused"
    assert len(records) == 2


def test_alert_without_target_is_recorded_not_acted(tmp_path):
    r = Responder(ActionPolicy(), ProcessTable())
    rec = r(alert(container="unknown"))
    assert rec.ok is False and "no response target" in rec.error


def test_block_takes_the_destination_of_the_alert(tmp_path):
    blocked = []
    r = Responder(ActionPolicy(), ProcessTable())
    r.add_target(Target("c1", tmp_path, block=lambda a, p: blocked.append((a, p))))
    ev = model.ConnectEvent(1, 2, 2, 1, 0, 0, "curl", 5, 5, "c1", 3, "inet", "198.51.100.7", 3333, 0)
    rec = r(alert(action="block", events=(ev,)))
    assert rec.ok and blocked == [("198.51.100.7", 3333)]


def test_record_says_who_what_and_why(tmp_path):
    r = Responder(ActionPolicy(), ProcessTable())
    r.add_target(Target("c1", tmp_path, block=lambda a, p: None))
    ev = model.ConnectEvent(1, 2, 2, 1, 0, 0, "curl", 5, 5, "c1", 3, "inet", "198.51.100.7", 3333, 0)
    rec = r(alert(action="block", events=(ev,)))
    assert rec.by == "rules" and rec.output == "something happened"
    assert rec.process == {"name": "sh", "exe": "/bin/sh", "cmdline": "sh -c x"}


def test_kill_process_and_block_are_per_process_and_destination(tmp_path):
    blocked = []
    r = Responder(ActionPolicy(), ProcessTable())
    r.add_target(Target("c1", tmp_path, block=lambda a, p: blocked.append((a, p))))
    ev1 = model.ConnectEvent(1, 2, 2, 1, 0, 0, "curl", 5, 5, "c1", 3, "inet", "198.51.100.7", 3333, 0)
    ev2 = model.ConnectEvent(1, 2, 2, 1, 0, 0, "curl", 5, 5, "c1", 3, "inet", "198.51.100.8", 3333, 0)
    assert r(alert(action="block", events=(ev1,))).ok
    assert r(alert(action="block", events=(ev1,))) is None          # same destination: deduped
    assert r(alert(action="block", events=(ev2,))).ok            # another one is blocked too
    assert blocked == [("198.51.100.7", 3333), ("198.51.100.8", 3333)]
    # kill-process: a second offending process is not hidden by the first (pids that do not
    # exist: nothing is signalled, but each gets its own action)
    first = r(alert(action="kill-process", pid=2 ** 22 + 11))
    second = r(alert(action="kill-process", pid=2 ** 22 + 13))
    assert first is not None and second is not None
    assert r(alert(action="kill-process", pid=2 ** 22 + 13)) is None


def test_resumed_target_is_paused_again_by_the_same_rule(tmp_path):
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.freeze").write_text("0")
    (cg / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    r = Responder(ActionPolicy(), ProcessTable())
    target = Target("c1", cg)
    r.add_target(target)
    assert r(alert()).action == "pause" and target.state == "paused"
    assert r(alert()) is None                                        # deduped while paused
    (cg / "cgroup.freeze").write_text("0")                           # the user thawed it
    r.resumed("c1")
    assert target.state == "running"
    again = r(alert())
    assert again is not None and again.ok and not again.skipped
    assert (cg / "cgroup.freeze").read_text() == "1"


def test_a_pause_while_the_container_starts_is_held_not_frozen(tmp_path):
    """A freeze while Incus starts the container would stop LXC halfway: the pause is held on
    the target (for the session layer to apply once started), said on the action record, and
    the cgroup is left alone; a kill is not held."""
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.freeze").write_text("0")
    (cg / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    r = Responder(ActionPolicy(), ProcessTable())
    target = Target("c1", cg, state="starting", kill_container=lambda: None)
    r.add_target(target)
    rec = r(alert(rule="early", action="pause"))
    assert rec.ok and rec.action == "pause" and "still starting" in rec.skipped
    assert (cg / "cgroup.freeze").read_text() == "0"
    assert target.state == "starting" and target.held == [("rules", "rule early: something happened")]
    killed = r(alert(rule="worse", action="kill"))
    assert killed.ok and not killed.skipped and target.state == "killed"
