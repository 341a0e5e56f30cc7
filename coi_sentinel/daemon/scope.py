"""One registered scope of the daemon: a session's container watched by the shared probes.

A :class:`Scope` is what a session's monitor used to be, minus the probes: the container's
cgroup in the kernel filter with its in-kernel kill policy, the session's rules engine, a
responder whose one target is the container, the session's audit log and a guardian (a process
outside the daemon that freezes the container when the daemon dies or stalls,
:mod:`coi_sentinel.supervision.guardian`).

Order on an alert, the same everywhere (:mod:`coi_sentinel.sentinel`): act (freeze or kill),
then write the alert and the action to the audit log, then tell subscribers and outputs.

Fail closed: the scope is paused, and the reason recorded, when the kernel lost more events than
``max_drops`` since it last ran unpaused, when its audit log cannot be written, and when its
owner (the ``run`` or keeper that registered it) goes away without unregistering it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..action import Action
from ..errors import AuditError, ResponseError, SentinelError
from ..events.model import kernel_kill_reason
from ..host import freezer
from ..records import ActionRecord, MonitorRecord
from ..respond.settings import DropWatch, ResponseSettings
from ..rules.context import SessionInfo
from ..sentinel import Listener, is_kill

log = logging.getLogger(__name__)

#: how often a scope compares its container's freezer with what it believes (seconds)
FREEZE_CHECK = 0.1
#: alerts kept for `status` and `top`
LAST_ALERTS = 5
#: a scope registered while Incus starts its container holds its pauses until the session
#: says the start is over (op ``started``), or this long after registering (seconds): the
#: start's own timeout (30 s) and some
START_HOLD = 40.0


@dataclass(slots=True)
class Registration:
    """What a client asks for when it registers a scope (kept on disk for re-adoption)."""

    name: str
    cgroup: str
    audit: str
    owner_uid: int = 0
    tool: str | None = None
    network: str | None = None
    kind: str = "session"
    response: dict[str, Any] = field(default_factory=dict)
    #: extra rule files: [{"path": shown in messages, "text": the file}]
    rules: list[dict[str, str]] = field(default_factory=list)
    #: the session's own outputs ([[outputs]] of its config, ``run --alerts-to``), as
    #: :meth:`OutputSpec.to_json` dicts: its alerts go there besides the daemon's outputs
    outputs: list[dict[str, Any]] = field(default_factory=list)
    #: registered while Incus still starts the container: a freeze then would stop LXC
    #: halfway (and Incus with it), so pauses wait for :meth:`Scope.started` (not kept on disk:
    #: a re-adopted scope has started long ago)
    starting: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cgroup": self.cgroup, "audit": self.audit,
                "owner_uid": self.owner_uid, "tool": self.tool, "network": self.network,
                "kind": self.kind, "response": self.response, "rules": self.rules,
                "outputs": self.outputs}

    @classmethod
    def from_dict(cls, d: dict[str, Any], owner_uid: int) -> "Registration":
        from ..errors import ConfigError
        from ..respond import settings as resp

        name, cgroup, audit = d.get("name"), d.get("cgroup"), d.get("audit")
        for key, value in (("name", name), ("cgroup", cgroup), ("audit", audit)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"register: {key} must be a non-empty string")
        rules = d.get("rules") or []
        if not isinstance(rules, list) or not all(
                isinstance(r, dict) and isinstance(r.get("path"), str) and isinstance(r.get("text"), str)
                for r in rules):
            raise ConfigError('register: rules must be a list of {"path", "text"}')
        response = d.get("response") or {}
        resp.parse(response, f"register {name}")      # checked here, applied by settings()
        outputs = d.get("outputs") or []
        output_specs(outputs, owner_uid, f"register {name}")     # checked here, opened by the scope
        return cls(name=name, cgroup=cgroup, audit=audit, owner_uid=owner_uid,
                   tool=d.get("tool"), network=d.get("network"), kind=d.get("kind") or "session",
                   response=response, rules=rules, outputs=outputs,
                   starting=d.get("starting") is True)

    def settings(self) -> ResponseSettings:
        from ..respond import settings as resp

        return ResponseSettings().merged(resp.parse(self.response, f"register {self.name}"))


class Scope(Listener):
    """A registered scope: its lane (engine, responder, audit log, outputs) is added to the
    daemon's :class:`~coi_sentinel.sentinel.Sentinel`, which feeds it the scope's events; the
    scope listens to its lane (counts, state, ``publish`` to subscribers) and is ticked by the
    daemon's loop (:meth:`tick`)."""

    def __init__(self, reg: Registration, *, scope_id: int, table, ruleset,
                 publish: Callable[[str, "Scope", Any], None],
                 chore: Callable[[Callable[[Any], None]], None] | None = None,
                 sinks=None) -> None:
        self.reg = reg
        self.name = reg.name
        self.cgroup = Path(reg.cgroup)
        self.scope_id = scope_id
        self.settings = reg.settings()
        self.table = table
        self.publish = publish
        #: runs ``fn(incus_client)`` off the loop (Incus calls are too slow for it)
        self.chore = chore
        #: the daemon's outputs and metrics (coi_sentinel.outputs.cli.AlertSinks)
        self.sinks = sinks
        #: the session's own outputs (Registration.outputs), opened with the scope
        self.own_sinks = None
        self.registered = time.time()
        self.events: Counter[str] = Counter()
        self.alert_counts: Counter[str] = Counter()
        self.last_alerts: deque[dict] = deque(maxlen=LAST_ALERTS)
        self.alerts = 0
        self.actions: list[ActionRecord] = []
        self.killed = False
        #: paused by a rule, the monitor or a user (not by the guardian or a lost owner): a
        #: returning owner does not thaw it
        self.paused_by_decision = False
        #: events per pid (the busiest processes in `top`), bounded by the process table
        self.per_pid: Counter[int] = Counter()
        #: the connection holding its lease (see the daemon's _Lease)
        self.lease = None
        #: the connection that registered it is gone (``run`` died): paused, waiting for clean
        self.orphan = False
        self.audit = None
        self.lane = None
        self.guardian = None
        self._spares = None
        self._guardian_logs: Path | None = None
        self.responder = None
        self.target = None
        self._drops = DropWatch(self.settings.max_drops)
        self._last_freeze_check = 0.0
        self._last_total = 0
        self._start_hold_until = 0.0
        self._ruleset = ruleset
        self.rules_hash = ""

    # ---------------------------------------------------------------- start / stop
    def open(self, probes, header: dict[str, Any], *, guard: bool, state_dir: Path,
             spares=None) -> None:
        """Audit log, responder, outputs and the lane (:class:`~coi_sentinel.sentinel.Lane`)
        and (``guard``) a guardian, from ``spares`` (a
        :class:`~coi_sentinel.supervision.guardian.Spares`) when given; the caller has put the
        cgroup into the kernel filter already, and adds the lane to the sentinel after."""
        from ..audit.log import AuditLog
        from ..respond.responder import Responder, Target
        from ..sentinel import Lane
        from ..supervision.guardian import Guardian

        self._spares = spares
        self._guardian_logs = state_dir / "logs"

        kill_policy = self.settings.kernel_policy()
        probes.set_kill_policy(self.scope_id, **kill_policy)
        self.audit = AuditLog(Path(self.reg.audit), header, events="all")
        try:
            self.responder = Responder(self.settings.policy(), self.table)
            self.target = Target(self.name, self.cgroup,
                                 block=self._block if self.reg.network not in (None, "none") else None)
            self.responder.add_target(self.target)
            if self.reg.outputs:
                self.own_sinks = _open_outputs(self.reg)
            info = SessionInfo(id=self.name, tool=self.reg.tool, network=self.reg.network)
            self.lane = Lane(self.table, ruleset=self._ruleset, sessions=lambda _ev: info,
                             responder=self.responder, log=self.audit,
                             outputs=[self.own_sinks], shared_outputs=[self.sinks], listeners=[self],
                             on_log_error=self._log_failed, before_alert=self._check_freezer,
                             timed=self.sinks.timed if self.sinks is not None else None)
            self.lane.write(MonitorRecord("start", by="daemon", detail={
                "rules": len(self._ruleset.rules), "rules_hash": self.rules_hash,
                "response": self.settings.to_dict(),
                "kill_in_kernel": {"memfd_exec": kill_policy["memfd_exec"],
                                   "networks": len(kill_policy["blocked"]),
                                   "ports": kill_policy["blocked_ports"]}}))
            self._last_total = probes.scope_drop_counts().get(self.scope_id, 0)
            self._drops.reset(self._last_total)
            if freezer.is_frozen(self.cgroup):
                self.target.state = "paused"
            elif self.reg.starting:
                self.target.state = "starting"
                self._start_hold_until = time.monotonic() + START_HOLD
            if guard:
                self.guardian = Guardian.spawn(self.name, self.cgroup, Path(self.reg.audit),
                                               stall_seconds=self.settings.stall_seconds,
                                               log_dir=self._guardian_logs, spares=spares)
        except BaseException:
            if self.own_sinks is not None:
                self.own_sinks.close()
                self.own_sinks = None
            self.audit.close()
            self.audit = None
            raise

    def set_rules(self, ruleset) -> None:
        """Swap the rule set (a reload): a new engine over the same process table."""
        self._ruleset = ruleset
        if self.lane is not None:
            self.lane.set_rules(ruleset)

    @property
    def ruleset(self):
        return self._ruleset

    @property
    def engine(self):
        return self.lane.engine if self.lane is not None else None

    def close(self, probes, *, clean: bool) -> dict[str, Any]:
        """Stop watching. ``clean``: the owner ended the session (the guardian stops quietly);
        otherwise the guardian is left to freeze what still runs (daemon shutdown)."""
        summary = {"alerts": self.alerts, "actions": [a.action.value for a in self.actions],
                   "killed": self.killed}
        try:
            self._check_freezer()
            if clean and _populated(self.cgroup) and not freezer.is_frozen(self.cgroup):
                self.fail_closed("the session ended its monitoring while the container still runs")
            if self.guardian is not None and clean:
                self.guardian.stop()
                self.guardian = None
            # not clean (the daemon stops): the guardian keeps its pipe, whose end at the
            # daemon's exit makes it freeze the container - nothing runs unwatched
            if self.lane is not None:
                status = self.lane.close(drops=probes.drop_counts(), stop=MonitorRecord(
                    "stop", by="daemon", detail={"clean": clean, "alerts": self.alerts,
                                                 "actions": summary["actions"],
                                                 "kills_in_kernel": probes.kill_counts()}))
                if status is not None:
                    summary["outputs"] = status
        finally:
            self.own_sinks = None
            self.audit = None
            try:
                probes.remove_scope(self.scope_id)
            except SentinelError as err:
                log.warning("%s: %s", self.name, err)
        return summary

    # ---------------------------------------------------------------- the lane's listener
    def event(self, event, process) -> None:
        self.events[event.type.label] += 1
        self.per_pid[event.pid] += 1
        if event.type.label == "exit":
            self.per_pid.pop(event.pid, None)
        self.publish("event", self, event)

    def alert(self, alert, record) -> None:
        self.alerts += 1
        self.alert_counts[record.severity.label] += 1
        self.last_alerts.append(record.to_dict())
        self.publish("alert", self, record)

    def action(self, rec: ActionRecord) -> None:
        self.actions.append(rec)
        if is_kill(rec):
            self.killed = True
        if rec.action is Action.PAUSE and rec.ok and rec.by in ("monitor", "user", "rules"):
            self.paused_by_decision = True
        elif rec.action is Action.RESUME:
            self.paused_by_decision = False
        if rec.action is Action.PAUSE and rec.done and self.chore is not None and self.reg.kind == "session":
            info = {"by": rec.by, "rule": rec.rule, "at": time.time(), "reason": rec.output or rec.reason}
            name = self.name
            self.chore(lambda client: _mark(client, name, info))
        self.publish("action", self, rec)

    def acted(self, rec: ActionRecord) -> None:
        """An action of the scope's own (failing closed, a user's): through the lane."""
        self.lane.acted(rec)

    def _log_failed(self, err: AuditError, rec: ActionRecord | None) -> None:
        if rec is None:
            self.fail_closed(f"the audit log cannot be written: {err}")
            return
        log.error("%s: action not written to the audit log: %s", self.name, err)
        if rec.action is not Action.PAUSE:
            self.fail_closed(f"the audit log cannot be written: {err}")

    def _block(self, address: str, port: int) -> None:
        from ..network import Firewall

        Firewall().block(self.name, address, port)

    # ---------------------------------------------------------------- control
    @property
    def state(self) -> str:
        if self.target is None:
            return "starting"
        if self.target.state == "killed" or not self.cgroup.is_dir():
            return "killed" if self.target.state == "killed" else "gone"
        if freezer.is_frozen(self.cgroup):
            return "orphan" if self.orphan else "frozen"
        if self.target.state == "starting":
            return "starting"
        return "orphan" if self.orphan else "running"

    def fail_closed(self, reason: str, by: str = "monitor") -> None:
        """Pause because the sentinel cannot vouch for the scope any more (held while the
        container starts: see :meth:`started`)."""
        target = self.target
        if target is None or target.state in ("paused", "killed"):
            return
        if target.state == "starting":
            log.warning("%s: pause held until Incus has started the container: %s", self.name, reason)
            target.held.append((by, reason))
            return
        if not self.cgroup.is_dir():
            log.info("%s: not paused (%s): the container is gone", self.name, reason)
            return
        try:
            rec = ActionRecord(Action.PAUSE, by, True, container=self.name, reason=reason,
                               target=str(self.cgroup), freeze_ns=freezer.set_frozen(self.cgroup, True))
            target.state = "paused"
        except ResponseError as err:
            rec = ActionRecord(Action.PAUSE, by, False, container=self.name, reason=reason,
                               target=str(self.cgroup), error=str(err))
        log.error("%s: %s: %s", self.name, "paused" if rec.ok else "PAUSE FAILED", reason)
        self.acted(rec)

    def pause(self, by: str, reason: str) -> None:
        self.fail_closed(reason, by=by)

    def started(self) -> None:
        """Incus has started the container (the session said so, or START_HOLD passed): the
        pauses held meanwhile (a rule's, a loss of records, a user's) are applied now, as one."""
        target = self.target
        if target is None or target.state != "starting":
            return
        target.state = "running"
        held, target.held = target.held, []
        if held:
            self.fail_closed("held while the container started: " + "; ".join(r for _by, r in held),
                             by=held[0][0])

    def resume(self, by: str) -> None:
        """Thaw (a user's resume-session, or a re-adopting daemon)."""
        if self.target is None or self.target.state == "killed":
            return
        freezer.set_frozen(self.cgroup, False)
        self._check_freezer(by=by)

    def kill(self, by: str, reason: str) -> None:
        from ..respond import killer

        try:
            killer.kill_cgroup(self.cgroup)
            rec = ActionRecord(Action.KILL, by, True, container=self.name, reason=reason)
            self.target.state = "killed"
            self.killed = True
        except SentinelError as err:
            rec = ActionRecord(Action.KILL, by, False, container=self.name, reason=reason, error=str(err))
        self.acted(rec)

    def _check_freezer(self, by: str = "user") -> None:
        """Compare the container's freezer with what the responder believes."""
        target = self.target
        if target is None or target.state == "killed":
            return
        frozen = freezer.is_frozen(self.cgroup)
        if target.state == "paused" and not frozen:
            target.state = "running"
            self.responder.resumed(self.name)
            self._drops.reset(self._last_total)
            self.acted(ActionRecord(Action.RESUME, by, True, container=self.name))
        elif target.state == "running" and frozen:
            target.state = "paused"
            self.acted(ActionRecord(Action.PAUSE, "outside", True, container=self.name, noticed=True,
                                    reason="the container was frozen from outside the daemon's loop (the "
                                           "guardian freezes it when the daemon stalls; see user.coi.paused)"))

    def tick(self, now: float, drop_total: int) -> None:
        """Housekeeping from the daemon's loop, after each poll."""
        self._last_total = drop_total
        self.lane.tick()        # the audit log's batch; the session's outputs' losses on the record
        if self.guardian is not None and not self.guardian.beat():
            self._replace_guardian("its pipe broke")
        if now - self._last_freeze_check >= FREEZE_CHECK:
            self._last_freeze_check = now
            self._check_freezer()
            if self.guardian is not None and not self.guardian.alive():
                self._replace_guardian(f"it exited ({self.guardian.proc.returncode})")
        if self._start_hold_until and now >= self._start_hold_until:
            self._start_hold_until = 0.0
            if self.target is not None and self.target.state == "starting":
                log.warning("%s: no word that the container started after %.0f s: pauses apply "
                            "again", self.name, START_HOLD)
                self.started()
        lost = self._drops.over(drop_total)
        if lost is not None and self.target is not None and self.target.state in ("running", "starting"):
            self.fail_closed(f"the kernel lost {lost} events (max_drops = {self._drops.limit}): "
                             "the sentinel cannot vouch for what the agent did")

    def _replace_guardian(self, why: str) -> None:
        from ..supervision.guardian import Guardian

        old, self.guardian = self.guardian, None
        old.abandon()
        if not self.cgroup.is_dir():
            return
        log.error("%s: the guardian (pid %s) is gone: %s; starting another", self.name, old.pid, why)
        try:
            self.guardian = Guardian.spawn(self.name, self.cgroup, Path(self.reg.audit),
                                           stall_seconds=self.settings.stall_seconds,
                                           log_dir=self._guardian_logs, spares=self._spares)
        except SentinelError as err:
            self.fail_closed(f"the guardian died and no other could start: {err}")
            return
        self.lane.write(MonitorRecord("guardian-restarted", detail={"reason": why, "pid": self.guardian.pid}),
                        sync=True)

    def to_status(self) -> dict[str, Any]:
        return {"name": self.name, "cgroup": str(self.cgroup), "scope_id": self.scope_id,
                "kind": self.reg.kind, "owner_uid": self.reg.owner_uid, "state": self.state,
                "tool": self.reg.tool, "network": self.reg.network, "audit": self.reg.audit,
                "events": dict(self.events), "alerts": dict(self.alert_counts),
                "actions": len(self.actions), "registered": self.registered,
                "killed": self.killed, "last_alerts": list(self.last_alerts),
                "guardian": self.guardian.pid if self.guardian is not None else None,
                "outputs": self.own_sinks.outputs.status()
                if self.own_sinks is not None and self.own_sinks.outputs is not None else None}


def _open_outputs(reg: Registration):
    """The session's own outputs, started (their delivery process is the daemon's child)."""
    from ..outputs import OutputSet
    from ..outputs.cli import AlertSinks

    specs = output_specs(reg.outputs, reg.owner_uid, f"register {reg.name}")
    return AlertSinks(OutputSet.from_options(tables=specs), None, "json")


def output_specs(outputs: Any, owner_uid: int, origin: str) -> list:
    """A registration's outputs as :class:`OutputSpec`; ConfigError when one is malformed, or
    when a user other than root asks the daemon (root) to write a file or a unix socket, or
    to read a CA file, of the user's choosing."""
    from ..errors import ConfigError
    from ..outputs.spec import OutputSpec

    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise ConfigError(f"{origin}: outputs must be a list of output specs")
    specs = []
    for i, d in enumerate(outputs):
        try:
            spec = OutputSpec.from_json(d)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ConfigError(f"{origin}: outputs[{i}] is not an output spec ({err!r})") from None
        if owner_uid != 0 and (spec.kind == "file" or spec.transport == "unix" or "ca" in spec.options):
            raise ConfigError(f"{origin}: outputs[{i}] ({spec.name}): only root may have the daemon "
                              "write files or unix sockets, or read CA files, for a session",
                              hint="use a network output (syslog+tcp, http, otlp+http), or set it "
                                   "in the daemon's own --alerts-to / --outputs-config")
        specs.append(spec)
    return specs


def ruleset_hash(paths) -> str:
    """sha256 over the rule files' names and bytes, in load order (what a reload's audit
    record names)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path).encode() + b"\0")
        h.update(Path(path).read_bytes() + b"\0")
    return h.hexdigest()


def _mark(client, name: str, info: dict) -> None:
    from ..host import pause_state

    pause_state.mark(client, name, info)


def _populated(cgroup: Path) -> bool:
    try:
        return bool((cgroup / "cgroup.procs").read_text().strip())
    except OSError:
        return False
