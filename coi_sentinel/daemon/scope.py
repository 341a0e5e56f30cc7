"""One registered scope of the daemon: a session's container watched by the shared probes.

A :class:`Scope` is what a session's monitor used to be, minus the probes: the container's
cgroup in the kernel filter with its in-kernel kill policy, the session's rules engine, a
responder whose one target is the container, the session's audit log and a guardian (a process
outside the daemon that freezes the container when the daemon dies or stalls,
:mod:`coi_sentinel.sessions.guardian`).

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

from ..errors import AuditError, ResponseError, SentinelError
from ..respond import freezer
from ..sessions.response import DropWatch, ResponseSettings

log = logging.getLogger(__name__)

#: how often a scope compares its container's freezer with what it believes (seconds)
FREEZE_CHECK = 0.1
#: alerts kept for `status` and `top`
LAST_ALERTS = 5


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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cgroup": self.cgroup, "audit": self.audit,
                "owner_uid": self.owner_uid, "tool": self.tool, "network": self.network,
                "kind": self.kind, "response": self.response, "rules": self.rules}

    @classmethod
    def from_dict(cls, d: dict[str, Any], owner_uid: int) -> "Registration":
        from ..errors import ConfigError
        from ..sessions import response as resp

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
        return cls(name=name, cgroup=cgroup, audit=audit, owner_uid=owner_uid,
                   tool=d.get("tool"), network=d.get("network"), kind=d.get("kind") or "session",
                   response=response, rules=rules)

    def settings(self) -> ResponseSettings:
        from ..sessions import response as resp

        return ResponseSettings().merged(resp.parse(self.response, f"register {self.name}"))


class Scope:
    """A registered scope. Driven by the daemon's loop (:meth:`handle`, :meth:`tick`); its
    ``publish`` callback tells subscribers about events, alerts and actions."""

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
        self.registered = time.time()
        self.events: Counter[str] = Counter()
        self.alert_counts: Counter[str] = Counter()
        self.last_alerts: deque[dict] = deque(maxlen=LAST_ALERTS)
        self.alerts = 0
        self.actions: list[dict] = []
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
        self.guardian = None
        self.engine = None
        self.responder = None
        self.target = None
        self._drops = DropWatch(self.settings.max_drops)
        self._last_freeze_check = 0.0
        self._last_total = 0
        self._ruleset = ruleset
        self.rules_hash = ""

    # ---------------------------------------------------------------- start / stop
    def open(self, probes, header: dict[str, Any], *, guard: bool, state_dir: Path) -> None:
        """Audit log, responder, engine and (``guard``) a guardian; the caller has put the
        cgroup into the kernel filter already."""
        from ..audit.log import AuditLog
        from ..respond.responder import Responder, Target
        from ..sessions.guardian import Guardian

        kill_policy = self.settings.kernel_policy()
        probes.set_kill_policy(self.scope_id, **kill_policy)
        self.audit = AuditLog(Path(self.reg.audit), header, events="all")
        try:
            self.responder = Responder(self.settings.policy(), self.table)
            self.target = Target(self.name, self.cgroup,
                                 block=self._block if self.reg.network not in (None, "none") else None)
            self.responder.add_target(self.target)
            self.set_rules(self._ruleset)
            self.audit.write_record({"record": "monitor", "event": "start", "by": "daemon",
                                     "rules": len(self._ruleset.rules),
                                     "rules_hash": self.rules_hash,
                                     "response": self.settings.to_dict(),
                                     "kill_in_kernel": {"memfd_exec": kill_policy["memfd_exec"],
                                                        "networks": len(kill_policy["blocked"]),
                                                        "ports": kill_policy["blocked_ports"]}})
            self._last_total = sum(probes.drop_counts().values())
            self._drops.reset(self._last_total)
            if freezer.is_frozen(self.cgroup):
                self.target.state = "paused"
            if guard:
                self.guardian = Guardian.spawn(self.name, self.cgroup, Path(self.reg.audit),
                                               stall_seconds=self.settings.stall_seconds,
                                               log_dir=state_dir / "logs")
        except BaseException:
            self.audit.close()
            self.audit = None
            raise

    def set_rules(self, ruleset) -> None:
        """Swap the rule set (a reload): a new engine over the same process table."""
        from ..rules import Engine, SessionInfo

        info = SessionInfo(id=self.name, tool=self.reg.tool, network=self.reg.network)
        self.engine = Engine(ruleset, on_alert=self._on_alert, table=self.table,
                             sessions=lambda _ev: info)
        self._ruleset = ruleset

    @property
    def ruleset(self):
        return self._ruleset

    def close(self, probes, *, clean: bool) -> dict[str, Any]:
        """Stop watching. ``clean``: the owner ended the session (the guardian stops quietly);
        otherwise the guardian is left to freeze what still runs (daemon shutdown)."""
        summary = {"alerts": self.alerts, "actions": [a["action"] for a in self.actions],
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
            if self.audit is not None:
                drops = probes.drop_counts()
                if drops:
                    self.audit.write_record({"record": "drops", "counts": drops})
                self.audit.write_record({"record": "monitor", "event": "stop", "by": "daemon",
                                         "clean": clean, "alerts": self.alerts,
                                         "actions": summary["actions"],
                                         "kills_in_kernel": probes.kill_counts()})
        finally:
            try:
                if self.audit is not None:
                    self.audit.close()
            finally:
                self.audit = None
                try:
                    probes.remove_scope(self.scope_id)
                except SentinelError as err:
                    log.warning("%s: %s", self.name, err)
        return summary

    # ---------------------------------------------------------------- events
    def handle(self, event, process) -> None:
        self.events[event.type.label] += 1
        self.per_pid[event.pid] += 1
        if event.type.label == "exit":
            self.per_pid.pop(event.pid, None)
        try:
            self.audit(event, process)        # before the engine: context precedes alerts
        except AuditError as err:
            self.fail_closed(f"the audit log cannot be written: {err}")
        if getattr(event, "killed", False):
            self._kernel_kill(event, process)
        self.engine(event, process)
        self.publish("event", self, event)

    def _kernel_kill(self, event, process) -> None:
        self.killed = True
        reason = "exec from a memfd" if event.type.label == "exec" else \
            f"connect to {getattr(event, 'daddr', '?')}:{getattr(event, 'dport', '?')} (blocked)"
        rec = {"record": "action", "action": "kill-process", "by": "kernel", "ok": True,
               "container": self.name, "pid": event.pid,
               "process": {"name": process.name, "exe": process.exe, "cmdline": process.cmdline}
               if process is not None else {"name": event.comm},
               "reason": reason, "output": f"killed in the kernel: {reason}",
               "event_ts_ns": event.ts_ns}
        self.acted(rec)

    def _on_alert(self, alert) -> None:
        self._check_freezer()               # a resume not noticed yet must not skip this pause
        rec = self.responder(alert)         # act first: the audit log's fsync comes after
        d = self.sinks.record(alert) if self.sinks is not None else alert.to_dict()
        self.alerts += 1
        self.alert_counts[str(d.get("severity"))] += 1
        self.last_alerts.append(d)
        try:
            self.audit.write_alert(d, scope_id=alert.scope_id)
        except AuditError as err:
            self.fail_closed(f"the audit log cannot be written: {err}")
        self.publish("alert", self, d)
        if self.sinks is not None:
            self.sinks.emit(alert)          # outputs and metrics: never blocks
        if rec is not None:
            if rec.get("ok") and not rec.get("skipped") and rec["action"] in ("kill", "kill-process"):
                self.killed = True
            self.acted(rec)

    def acted(self, rec: dict[str, Any]) -> None:
        self.actions.append(rec)
        if self.sinks is not None:
            self.sinks.action(rec)
        if rec.get("action") == "pause" and rec.get("ok") and rec.get("by") in ("monitor", "user", "rules"):
            self.paused_by_decision = True
        elif rec.get("action") == "resume":
            self.paused_by_decision = False
        if rec.get("action") == "pause" and rec.get("ok") and not rec.get("skipped") \
                and self.chore is not None and self.reg.kind == "session":
            info = {"by": rec.get("by"), "rule": rec.get("rule"), "at": time.time(),
                    "reason": rec.get("output") or rec.get("reason")}
            name = self.name
            self.chore(lambda client: _mark(client, name, info))
        try:
            self.audit.write_action(rec)
        except AuditError as err:
            log.error("%s: action not written to the audit log: %s", self.name, err)
            if rec.get("action") != "pause":
                self.fail_closed(f"the audit log cannot be written: {err}")
        self.publish("action", self, rec)

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
        return "orphan" if self.orphan else "running"

    def fail_closed(self, reason: str, by: str = "monitor") -> None:
        """Pause because the sentinel cannot vouch for the scope any more."""
        target = self.target
        if target is None or target.state in ("paused", "killed"):
            return
        if not self.cgroup.is_dir():
            log.info("%s: not paused (%s): the container is gone", self.name, reason)
            return
        rec: dict[str, Any] = {"record": "action", "action": "pause", "by": by,
                               "container": self.name, "reason": reason, "target": str(self.cgroup)}
        try:
            rec.update(ok=True, freeze_ns=freezer.set_frozen(self.cgroup, True))
            target.state = "paused"
        except ResponseError as err:
            rec.update(ok=False, error=str(err))
        log.error("%s: %s: %s", self.name, "paused" if rec["ok"] else "PAUSE FAILED", reason)
        self.acted(rec)

    def pause(self, by: str, reason: str) -> None:
        self.fail_closed(reason, by=by)

    def resume(self, by: str) -> None:
        """Thaw (a user's resume-session, or a re-adopting daemon)."""
        if self.target is None or self.target.state == "killed":
            return
        freezer.set_frozen(self.cgroup, False)
        self._check_freezer(by=by)

    def kill(self, by: str, reason: str) -> None:
        from ..respond import killer

        rec: dict[str, Any] = {"record": "action", "action": "kill", "by": by, "container": self.name,
                               "reason": reason}
        try:
            killer.kill_cgroup(self.cgroup)
            rec["ok"] = True
            self.target.state = "killed"
            self.killed = True
        except SentinelError as err:
            rec.update(ok=False, error=str(err))
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
            self.acted({"record": "action", "action": "resume", "by": by, "ok": True,
                        "container": self.name})
        elif target.state == "running" and frozen:
            target.state = "paused"
            self.acted({"record": "action", "action": "pause", "by": "outside", "ok": True,
                        "container": self.name, "noticed": True,
                        "reason": "the container was frozen from outside the daemon's loop (the "
                                  "guardian freezes it when the daemon stalls; see user.coi.paused)"})

    def tick(self, now: float, drop_total: int) -> None:
        """Housekeeping from the daemon's loop, after each poll."""
        self._last_total = drop_total
        try:
            self.audit.tick()
        except AuditError as err:
            self.fail_closed(f"the audit log cannot be written: {err}")
        if self.guardian is not None and not self.guardian.beat():
            self._replace_guardian("its pipe broke")
        if now - self._last_freeze_check >= FREEZE_CHECK:
            self._last_freeze_check = now
            self._check_freezer()
            if self.guardian is not None and not self.guardian.alive():
                self._replace_guardian(f"it exited ({self.guardian.proc.returncode})")
        lost = self._drops.over(drop_total)
        if lost is not None and self.target is not None and self.target.state == "running":
            self.fail_closed(f"the kernel lost {lost} events (max_drops = {self._drops.limit}): "
                             "the sentinel cannot vouch for what the agent did")

    def _replace_guardian(self, why: str) -> None:
        from ..sessions import paths
        from ..sessions.guardian import Guardian

        old, self.guardian = self.guardian, None
        old.abandon()
        if not self.cgroup.is_dir():
            return
        log.error("%s: the guardian (pid %s) is gone: %s; starting another", self.name, old.pid, why)
        try:
            self.guardian = Guardian.spawn(self.name, self.cgroup, Path(self.reg.audit),
                                           stall_seconds=self.settings.stall_seconds,
                                           log_dir=paths.state_dir() / "logs")
        except SentinelError as err:
            self.fail_closed(f"the guardian died and no other could start: {err}")
            return
        try:
            self.audit.write_record({"record": "monitor", "event": "guardian-restarted",
                                     "reason": why, "pid": self.guardian.pid}, sync=True)
        except AuditError:
            pass

    def to_status(self) -> dict[str, Any]:
        return {"name": self.name, "cgroup": str(self.cgroup), "scope_id": self.scope_id,
                "kind": self.reg.kind, "owner_uid": self.reg.owner_uid, "state": self.state,
                "tool": self.reg.tool, "network": self.reg.network, "audit": self.reg.audit,
                "events": dict(self.events), "alerts": dict(self.alert_counts),
                "actions": len(self.actions), "registered": self.registered,
                "killed": self.killed, "last_alerts": list(self.last_alerts),
                "guardian": self.guardian.pid if self.guardian is not None else None}


def ruleset_hash(paths) -> str:
    """sha256 over the rule files' names and bytes, in load order (what a reload's audit
    record names)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path).encode() + b"\0")
        h.update(Path(path).read_bytes() + b"\0")
    return h.hexdigest()


def _mark(client, name: str, info: dict) -> None:
    from ..sessions import paused

    paused.mark(client, name, info)


def _populated(cgroup: Path) -> bool:
    try:
        return bool((cgroup / "cgroup.procs").read_text().strip())
    except OSError:
        return False
