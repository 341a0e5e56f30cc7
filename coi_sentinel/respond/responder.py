"""The responder: turns alerts into actions on their targets, fast, once, and on the record.

A :class:`Target` is what a response may touch: a container (or watched cgroup) with its
cgroup path and optional hooks to tell the session layer (pause state, network block). The
responder never acts on a process outside the target's cgroup. Each action is an
:class:`~coi_sentinel.records.ActionRecord` (for the audit log and the terminal of ``run``)
with its latency from the event's kernel timestamp to the action complete.

Repeats are deduplicated per rule and target for ``dedupe_ns``; ``kill-process`` and ``block``
are deduplicated per process and per destination as well, so a second offending process or a
second destination is acted on. A target still ``starting`` (Incus has not finished starting
the container) is not frozen: a freeze then stops LXC halfway through its start and Incus with
it, so the pause is kept in ``Target.held`` for the session layer to apply once the container
has started. :meth:`Responder.resumed` forgets a paused target's history when
the user resumes it: the same rule firing again pauses it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import SentinelError
from ..events import model
from ..events.proctable import ProcessTable
from ..host import freezer
from ..records import ActionRecord
from . import killer
from .policy import STRENGTH, Action, ActionPolicy

log = logging.getLogger(__name__)

ActionCallback = Callable[[ActionRecord], None]


@dataclass(slots=True)
class Target:
    name: str                                   # container name (as in events' "container")
    cgroup: Path
    #: called after a pause with the action record (the session marks itself paused)
    on_paused: Callable[[dict], None] | None = None
    #: kills the whole container (the session layer stops it through Incus); default cgroup.kill
    kill_container: Callable[[], None] | None = None
    #: adds a destination (address, port) to the session's deny set
    block: Callable[[str, int], None] | None = None
    state: str = "running"                      # starting, running, paused, killed
    #: pauses asked for while ``starting``, as (by, reason), applied once the container started
    held: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Responder:
    policy: ActionPolicy
    table: ProcessTable
    targets: dict[str, Target] = field(default_factory=dict)
    #: used for alerts whose container has no target of its own (host-wide watching)
    default_target: Target | None = None
    dedupe_ns: int = 10_000_000_000             # one action per rule and target per 10 s
    on_action: list[ActionCallback] = field(default_factory=list)
    _last: dict[tuple[str, str], int] = field(default_factory=dict)
    #: the actions taken: counts by action name
    taken: dict[str, int] = field(default_factory=dict)

    def add_target(self, target: Target) -> None:
        self.targets[target.name] = target

    def __call__(self, alert) -> ActionRecord | None:
        """Handle one alert (an engine callback). Returns the action record, or None when the
        alert needed no action or was a repeat inside the dedupe window."""
        action = self.policy.decide(alert.rule, alert.severity.label, alert.action)
        if action is Action.ALERT:
            return None
        target = self.targets.get(alert.container, self.default_target)
        now = time.monotonic_ns()
        key = _dedupe_key(action, alert)
        last = self._last.get(key)
        if last is not None and now - last < self.dedupe_ns:
            return None
        self._last[key] = now
        proc = alert.process
        fields: dict[str, Any] = {}
        try:
            if target is None:
                raise SentinelError(f"no response target for {alert.container!r}: alert only")
            fields.update(self._do(action, alert, target), ok=True)
        except SentinelError as err:
            fields.update(ok=False, error=str(err))
            log.warning("response %s for %s failed: %s", action.value, alert.rule, err)
        done = time.monotonic_ns()
        record = ActionRecord(action=action, by="rules", rule=alert.rule, severity=alert.severity,
                              container=alert.container, pid=proc.pid,
                              process={"name": proc.name, "exe": proc.exe, "cmdline": proc.cmdline},
                              output=alert.output, event_ts_ns=alert.ts_ns,
                              latency_ns=done - alert.ts_ns, ts_ns=done, **fields)
        self.taken[action.value] = self.taken.get(action.value, 0) + 1
        for cb in self.on_action:
            cb(record)
        return record

    def resumed(self, name: str) -> None:
        """The target ``name`` was thawed by the user: running again, and what fired on it
        before no longer suppresses an action."""
        target = self.targets.get(name)
        if target is not None and target.state == "paused":
            target.state = "running"
        for key in [k for k in self._last if k[1] == name]:
            del self._last[key]

    def _do(self, action: Action, alert, target: Target) -> dict[str, Any]:
        if target.state == "killed" or (target.state == "paused" and STRENGTH[action] <= STRENGTH[Action.PAUSE]
                                        and action is not Action.BLOCK):
            return {"skipped": f"target already {target.state}"}
        if action is Action.PAUSE and target.state == "starting":
            target.held.append(("rules", f"rule {alert.rule}: {alert.output}"))
            return {"skipped": "the container is still starting (a freeze would stop Incus "
                               "halfway): paused once it has started"}
        if action is Action.PAUSE:
            took = freezer.set_frozen(target.cgroup, True)
            target.state = "paused"
            out = {"target": str(target.cgroup), "freeze_ns": took}
            if target.on_paused is not None:
                target.on_paused(dict(out))
            return out
        if action is Action.KILL:
            # freeze first: every task stops at once (about a millisecond), so nothing more
            # leaves the container while the kill (Incus' stop, or cgroup.kill) runs
            froze = None
            try:
                froze = freezer.set_frozen(target.cgroup, True, wait=0.2)
            except SentinelError as err:
                log.warning("could not freeze %s before killing it: %s", target.cgroup, err)
            if target.kill_container is not None:
                target.kill_container()
                took = 0
            else:
                took = killer.kill_cgroup(target.cgroup)
            target.state = "killed"
            return {"target": str(target.cgroup), "freeze_ns": froze, "kill_ns": took}
        if action is Action.KILL_PROCESS:
            pids = killer.kill_tree(alert.process.pid, self.table, allowed_cgroup=target.cgroup)
            return {"killed_pids": tuple(pids)}
        if action is Action.BLOCK:
            dest = _destination(alert)
            if dest is None:
                return {"skipped": "the alert has no network destination"}
            if target.block is None:
                raise SentinelError(f"{target.name} has no network policy to block {dest[0]}")
            target.block(*dest)
            return {"blocked": f"{dest[0]}:{dest[1]}"}
        return {}


def _dedupe_key(action: Action, alert) -> tuple:
    """(rule, container[, what]): one pause or kill per rule and container in the window, but
    every offending process (kill-process) and every destination (block) gets its action."""
    if action is Action.KILL_PROCESS:
        return (alert.rule, alert.container, alert.process.pid)
    if action is Action.BLOCK:
        return (alert.rule, alert.container, _destination(alert))
    return (alert.rule, alert.container)


def _destination(alert) -> tuple[str, int] | None:
    for ev in reversed(alert.events):
        if isinstance(ev, (model.ConnectEvent, model.DupEvent, model.NetSendEvent, model.ConnectRepeatEvent)):
            if getattr(ev, "family", "") in ("inet", "inet6") and ev.daddr:
                return ev.daddr, ev.dport
    return None
