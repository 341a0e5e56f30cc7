"""The sentinel, assembled in one place: what the daemon, ``watch``, ``record`` and replay run.

::

    source ─▶ pipeline ─▶ Sentinel ─▶ lane of the event's scope (or the one lane of all events)
    (probes → stream,     (process    │
     or a trace reader)    table)     ├─ 1. the log (audit log, or the trace being recorded)
                                      ├─ 2. listeners' ``event`` (terminal, subscribers)
                                      ├─ 3. an in-kernel kill on the event: an action record
                                      └─ 4. the engine ─▶ on each alert:
                                             a. act: the responder (freeze, kill, block)
                                             b. fsync: the alert record, then the action
                                                record, to the log (no action: written,
                                                fsync'd at the batch's end, not waited for)
                                             c. tell: listeners' ``alert``, the outputs and
                                                metrics (never block), listeners' ``action``

**Act, then fsync**: nothing waits on the disk before a freeze or a kill. The log has the alert
before the action it caused; the event that completed a match is logged and shown before its
alert. An alert no action came of (none was due, or the responder had already acted on its
rule and target) is written to the log before it is told - the kernel holds it: a crash of the
sentinel cannot lose it - but its fsync is not waited for: the log syncs it in its writer's
thread at the end of the batch of events it came in (a disk's fsync is 0.2 ms typically, 5 ms
at its p99 here, which the exec -> alert line latency goal of 2 ms cannot pay). An alert that
led to an action is fsync'd before anything is told, as is the action. One alert record is made per alert (one ``time``), and the log, the listeners and every
output get that same record.

A :class:`Lane` is what one scope's events go through: the session's engine, responder, audit
log, outputs and listeners (the daemon has one per registered session; ``watch``, ``record``
and replay one for every event). The :class:`Sentinel` is added to the source's pipeline once,
and routes each event to its lane (Tetragon's observer: one observer, listeners added once).

Sources: :class:`coi_sentinel.monitor.Monitor` (probes, stream, pipeline) live;
:class:`coi_sentinel.replay.replayer.Replayer` feeds a trace reader's events into its pipeline.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .action import KILLS, Action
from .errors import AuditError
from .events.model import kernel_kill_reason
from .heap import settle
from .records import ActionRecord, AlertRecord, DropsRecord, MonitorRecord, Record

if TYPE_CHECKING:
    from .events.model import Event
    from .events.proctable import Process, ProcessTable
    from .pipeline import Pipeline
    from .rules.alert import Alert

log = logging.getLogger(__name__)


class Listener:
    """What a lane tells, in its order (each method optional to override)."""

    def event(self, event: "Event", process: "Process | None") -> None:
        """Every event, after the log, before the engine sees it."""

    def alert(self, alert: "Alert", record: AlertRecord | None) -> None:
        """An alert, after it was acted on and logged (``record`` None when the lane makes
        none: no log, no outputs, ``records=False``)."""

    def action(self, record: ActionRecord) -> None:
        """An action taken (or failed, or not needed), after it was logged."""


class AlertList(Listener, list):
    """A listener that keeps every alert (tests, benches: ``record(..., listeners=[live])``)."""

    def alert(self, alert: "Alert", record: AlertRecord | None) -> None:
        self.append(alert)


class Lane:
    """One scope's consumers, in the sentinel's order (the module's doc).

    ``log``: an :class:`~coi_sentinel.audit.log.AuditLog` (or anything with its writing
    methods); ``outputs``: :class:`~coi_sentinel.outputs.cli.AlertSinks` the lane owns (it
    ticks and closes them); ``shared_outputs``: ones it only emits to (the daemon's, shared by
    every scope). The first of all stamps the record (``stamp`` overrides); ``on_log_error(err, record)``: the log could not be written
    (``record`` the action it was writing, None otherwise) - default: raise; ``before_alert``:
    called before an alert is acted on (the daemon compares a scope's freezer with what it
    believes); ``timed``: wraps the engine (metrics time one call in N)."""

    def __init__(self, table: "ProcessTable", *, ruleset=None, sessions=None, limits=None,
                 responder=None, log=None, outputs: Sequence[Any] = (),
                 shared_outputs: Sequence[Any] = (), listeners: Sequence[Listener] = (),
                 on_log_error: Callable[[AuditError, ActionRecord | None], None] | None = None,
                 before_alert: Callable[[], None] | None = None,
                 timed: Callable[[Callable], Callable] | None = None,
                 stamp: Callable[[], tuple[int | None, str | None]] | None = None,
                 records: bool = True) -> None:
        self.table = table
        self.responder = responder
        self.log = log
        self.outputs = [o for o in outputs if o is not None]
        self.every_output = [o for o in shared_outputs if o is not None] + self.outputs
        self.listeners = list(listeners)
        #: only the listeners that override ``event`` are called per event
        self._on_event = [ln.event for ln in self.listeners if type(ln).event is not Listener.event]
        self.on_log_error = on_log_error
        self.before_alert = before_alert
        self._timed = timed
        self._stamp = stamp
        self._records = records or log is not None or bool(self.every_output)
        self._sessions = sessions
        self._limits = limits
        self.engine = None
        self._run_engine: Callable | None = None
        self.ruleset = None
        if ruleset is not None:
            self.set_rules(ruleset)

    def set_rules(self, ruleset) -> None:
        """A new engine over the same process table (a reload: sequence and threshold state
        start afresh)."""
        from .rules.engine import Engine

        self.engine = Engine(ruleset, on_alert=self.alert, table=self.table, sessions=self._sessions,
                             limits=self._limits)
        self._run_engine = self._timed(self.engine) if self._timed is not None else self.engine
        self.ruleset = ruleset

    # ---------------------------------------------------------------- the order
    def handle(self, event: "Event", process: "Process | None") -> None:
        if self.log is not None:
            try:
                self.log(event, process)          # 1. context precedes alerts
            except AuditError as err:
                self._log_failed(err, None)
        if self._on_event:
            for on_event in self._on_event:
                on_event(event, process)        # 2.
        if getattr(event, "killed", False):
            self._kernel_kill(event, process)     # 3.
        run = self._run_engine
        if run is not None:
            run(event, process)                   # 4.

    def alert(self, alert: "Alert") -> None:
        """The engine's callback (also callable directly)."""
        if self.before_alert is not None:
            self.before_alert()
        action = self.responder(alert) if self.responder is not None else None     # a. act
        record = None
        offset, host = self._stamp() if self._stamp is not None else self._clock()
        if self._records:
            record = alert.record(wall_offset_ns=offset, hostname=host)
        if self.log is not None and record is not None:
            try:
                self.log.write_alert(record, scope_id=alert.scope_id,           # b. fsync
                                     durable=action is not None)
            except AuditError as err:
                self._log_failed(err, None)
        for listener in self.listeners:
            listener.alert(alert, record)                                       # c. tell
        for out in self.every_output:
            out.emit(alert, wall_offset_ns=offset, hostname=host, record=record)
        if action is not None:
            self.acted(action)

    def acted(self, record: ActionRecord) -> None:
        """An action (the responder's, the kernel's, or the caller's own: a pause when failing
        closed, a user's kill): logged (fsync'd), then metrics, then listeners."""
        if self.log is not None:
            try:
                self.log.write_action(record)
            except AuditError as err:
                self._log_failed(err, record)
        for out in self.every_output:
            out.action(record)
        for listener in self.listeners:
            listener.action(record)

    def write(self, record: Record, *, sync: bool = False) -> None:
        """Any other record (monitor, drops...) to the log."""
        if self.log is not None:
            try:
                self.log.write_record(record, sync=sync)
            except AuditError as err:
                self._log_failed(err, None)

    def _kernel_kill(self, event: "Event", process: "Process | None") -> None:
        reason = kernel_kill_reason(event)
        proc = ({"name": process.name, "exe": process.exe, "cmdline": process.cmdline}
                if process is not None else {"name": event.comm})
        self.acted(ActionRecord(Action.KILL_PROCESS, "kernel", True, container=event.container,
                                pid=event.pid, process=proc, reason=reason,
                                output=f"killed in the kernel: {reason}", event_ts_ns=event.ts_ns))

    def _clock(self) -> tuple[int | None, str | None]:
        """The first output's clock (so the log's record and the outputs' agree), else now."""
        for out in self.every_output:
            return out.wall_offset_ns, out.hostname
        return time.time_ns() - time.monotonic_ns(), None

    def _log_failed(self, err: AuditError, record: ActionRecord | None) -> None:
        if self.on_log_error is None:
            raise err
        self.on_log_error(err, record)

    # ---------------------------------------------------------------- housekeeping
    def end_batch(self) -> None:
        """The source's batch of events is handled: the log syncs the alerts written without
        waiting for it (in its writer's thread)."""
        end = getattr(self.log, "end_batch", None)
        if end is not None:
            try:
                end()
            except AuditError as err:
                self._log_failed(err, None)

    def tick(self) -> None:
        """From the event loop, at least once a second: a due batch of the log; the outputs'
        losses onto the record."""
        if self.log is not None and hasattr(self.log, "tick"):
            try:
                self.log.tick()
            except AuditError as err:
                self._log_failed(err, None)
        for out in self.outputs:
            out.tick(self.log)

    def close(self, *, drops: dict[str, int] | None = None,
              stop: MonitorRecord | None = None) -> dict[str, Any] | None:
        """The end, in order: flush the lane's own outputs (their status on the record), the
        drops, the monitor's ``stop`` record, then close the log. Returns the outputs' status
        (None without outputs)."""
        status = None
        try:
            for out in self.outputs:
                s = out.close(self.log)
                if s is not None:
                    status = {**(status or {}), **s}
            if drops:
                self.write(DropsRecord(counts=dict(drops)))
            if stop is not None:
                self.write(stop)
        finally:
            if self.log is not None:
                self.log.close()
        return status


class Sentinel:
    """Routes a source's events to their lanes; added to the source's pipeline once."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.pipeline: "Pipeline" = source.pipeline
        #: the lane of every event (watch, record, replay), or None (the daemon: by scope)
        self.lane: Lane | None = None
        self.lanes: dict[int, Lane] = {}
        self.pipeline.add_sink(self._route)
        #: the sentinel's place among the pipeline's sinks
        self._slot = len(self.pipeline.sinks) - 1
        self.pipeline.add_batch_end(self._end_batch)

    @property
    def table(self) -> "ProcessTable":
        return self.pipeline.table

    def add(self, lane: Lane, scope_id: int | None = None) -> Lane:
        """``lane`` gets the events of ``scope_id`` (a container's cgroup id), or every event."""
        if scope_id is None:
            self.lane = lane
            self.pipeline.sinks[self._slot] = lane.handle     # one lane: no routing per event
        else:
            self.lanes[scope_id] = lane
        return lane

    def remove(self, scope_id: int) -> None:
        self.lanes.pop(scope_id, None)

    def _route(self, event: "Event", process: "Process") -> None:
        lane = self.lane if self.lane is not None else self.lanes.get(event.scope_id)
        if lane is not None:
            lane.handle(event, process)

    def _end_batch(self) -> None:
        if self.lane is not None:
            self.lane.end_batch()
        else:
            for lane in list(self.lanes.values()):
                lane.end_batch()

    def tick(self) -> None:
        for lane in ([self.lane] if self.lane is not None else list(self.lanes.values())):
            lane.tick()

    def run(self, should_stop: Callable[[], bool], duration: float | None = None) -> None:
        """Poll the (live) source until ``should_stop()`` or ``duration``, ticking the lanes;
        then drain what the kernel still holds."""
        deadline = None if duration is None else time.monotonic() + duration
        settle()                # what set-up built lives as long as the loop (coi_sentinel/heap.py)
        while not should_stop():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.source.poll()
            self.tick()
        self.source.stream.drain()


def is_kill(record: ActionRecord) -> bool:
    """A kill that happened (``run`` exits with EXIT_KILLED after one)."""
    return record.done and record.action in KILLS


__all__ = ["AlertList", "Lane", "Listener", "Sentinel", "is_kill"]
