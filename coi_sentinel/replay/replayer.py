"""One replay stream: the events of traces, in file order, through a :class:`Pipeline` (its
process table) and the live sentinel's lane (:mod:`coi_sentinel.sentinel`) with a trace reader
in place of the probes: the same engine, fed exactly as live.

Time is the events' own ``ts_ns``: the engine reads no clock, so a sequence window or a
threshold window is measured between recorded events and behaves as it did live. Several traces
given to one :class:`Replayer` are one stream (the rotated files of an audit log, in order);
:func:`replay` with ``each=True`` gives every trace a fresh process table and rule state.

Records in a trace (alerts written live, actions, drops...) are not replayed; an audit log's
``drops`` records and a trace header's ``drops`` are summed into :attr:`TraceStats.lost`, so a
report can say that alerts may be missing because events were lost when it was recorded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import TraceError
from ..pipeline import Pipeline
from ..records import AlertRecord
from ..rules.alert import Alert
from ..rules.context import SessionInfo
from ..sentinel import Lane, Listener, Sentinel
from ..trace.format import parse_iso_time
from ..trace.reader import TraceReader

if TYPE_CHECKING:
    from ..rules.ruleset import RuleSet
    from ..rules.state import Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayedAlert:
    """An alert and where the event that completed its match is: trace file and line."""

    alert: Alert
    trace: str
    line: int

    def record(self, **stamp: Any) -> AlertRecord:
        """The alert record (``stamp``: ``wall_offset_ns``, ``hostname``, see Alert.record)
        with the trace and line."""
        return dataclasses.replace(self.alert.record(**stamp), trace=self.trace, line=self.line)

    def to_dict(self, **stamp: Any) -> dict[str, Any]:
        return self.record(**stamp).to_dict()


@dataclass(slots=True)
class TraceStats:
    """What one trace held and what reading it skipped."""

    path: str
    header: dict[str, Any]
    events: int = 0
    records: int = 0
    #: lines skipped in lenient mode, by reason (``truncated``, ``json``, ``event``...)
    skipped: Counter[str] = field(default_factory=Counter)
    #: the first errors of the skipped lines (TraceReader keeps 20)
    errors: list[TraceError] = field(default_factory=list)
    #: events lost when the trace was recorded (header drops, ``drops`` records)
    lost: int = 0

    @property
    def wall_offset_ns(self) -> int | None:
        return wall_offset_ns(self.header)

    def to_dict(self) -> dict[str, Any]:
        return {"trace": self.path, "events": self.events, "records": self.records,
                "skipped": dict(self.skipped), "lost": self.lost,
                "source": self.header.get("source"), "kernel": self.header.get("kernel")}


def wall_offset_ns(header: dict[str, Any]) -> int | None:
    """Add this to a ``ts_ns`` of the trace to get nanoseconds since the epoch (the header's
    ``start_time`` and ``start_ns`` were taken together); None when the header lacks them."""
    start_ns, start_time = header.get("start_ns"), header.get("start_time")
    if not isinstance(start_ns, int) or not isinstance(start_time, str):
        return None
    try:
        return round(parse_iso_time(start_time) * 1e9) - start_ns
    except ValueError:
        return None


def _drops_total(value: Any) -> int:
    if isinstance(value, dict):
        return sum(v for v in value.values() if isinstance(v, int))
    return value if isinstance(value, int) else 0


class Replayer:
    """Feed traces into one pipeline and engine. Alerts are collected in :attr:`alerts` (with
    the trace and line that completed them) and passed to ``on_alert`` as they fire."""

    def __init__(self, ruleset: "RuleSet", *, lenient: bool = False,
                 session: SessionInfo | None = None,
                 on_alert: Callable[[ReplayedAlert], None] | None = None,
                 limits: "Limits | None" = None) -> None:
        self.lenient = lenient
        self.on_alert = on_alert
        self.pipeline = Pipeline()
        sessions = (lambda _ev: session) if session is not None else None
        # the live sentinel's lane, a trace reader in place of the probes; no responder, no
        # log: alerts are collected with their trace and line
        self.sentinel = Sentinel(self)
        lane = self.sentinel.add(Lane(self.pipeline.table, ruleset=ruleset, sessions=sessions,
                                      limits=limits, listeners=[_Hits(self._alert)], records=False))
        self.engine = lane.engine
        self.alerts: list[ReplayedAlert] = []
        self.traces: list[TraceStats] = []
        self._trace = ""
        self._line = 0
        self._reader: TraceReader | None = None

    @property
    def events(self) -> int:
        return sum(t.events for t in self.traces)

    def _alert(self, alert: Alert) -> None:
        line = self._reader.line if self._reader is not None else self._line
        hit = ReplayedAlert(alert, self._trace, line)
        self.alerts.append(hit)
        if self.on_alert is not None:
            self.on_alert(hit)

    def feed_trace(self, path: str | os.PathLike[str]) -> TraceStats:
        """Replay one trace after the ones already fed. Raises :class:`TraceError` on the first
        bad line unless lenient (a bad header is fatal even then)."""
        with TraceReader(path, lenient=self.lenient) as reader:
            stats = TraceStats(reader.source, reader.header,
                               lost=_drops_total(reader.header.get("drops")))
            self.traces.append(stats)
            self._trace = reader.source
            self._reader = reader

            def on_record(_line: int, record: dict[str, Any]) -> None:
                if record.get("record") == "drops":
                    stats.lost += _drops_total(record.get("counts")) + _drops_total(record.get("lost"))

            try:
                # one loop of the pipeline's over the events; an alert reads the line of the
                # event that completed it from the reader (alerts fire while it is fed)
                self.pipeline.feed_all(reader.iter_events(on_record))
            finally:
                self._line = reader.line
                self._reader = None
                stats.events = reader.events
                stats.records = reader.records
                stats.skipped = Counter(reader.skipped)
                stats.errors = list(reader.errors)
        return stats

    def close(self) -> None:
        self.pipeline.close()


class _Hits(Listener):
    def __init__(self, on_alert: Callable[[Alert], None]) -> None:
        self.alert = lambda alert, _record: on_alert(alert)   # type: ignore[method-assign]


@dataclass(slots=True)
class ReplayResult:
    alerts: list[ReplayedAlert]
    traces: list[TraceStats]
    seconds: float
    rules: int

    @property
    def events(self) -> int:
        return sum(t.events for t in self.traces)

    @property
    def skipped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for t in self.traces:
            total.update(t.skipped)
        return total

    @property
    def by_rule(self) -> Counter[str]:
        return Counter(hit.alert.rule for hit in self.alerts)


def replay(paths: Iterable[str | os.PathLike[str]], ruleset: "RuleSet", *, lenient: bool = False,
           each: bool = False, session: SessionInfo | None = None,
           on_alert: Callable[[ReplayedAlert], None] | None = None,
           on_trace: Callable[[TraceStats], None] | None = None) -> ReplayResult:
    """Replay ``paths`` in order: one stream, or (``each``) a fresh stream per trace.
    ``on_trace`` is called after each trace (for per-file warnings as they happen)."""
    t0 = time.perf_counter()
    alerts: list[ReplayedAlert] = []
    traces: list[TraceStats] = []
    replayer: Replayer | None = None
    try:
        for path in paths:
            if replayer is None or each:
                if replayer is not None:
                    replayer.close()
                replayer = Replayer(ruleset, lenient=lenient, session=session, on_alert=on_alert)
            seen = len(replayer.alerts)
            stats = replayer.feed_trace(path)
            alerts.extend(replayer.alerts[seen:])
            traces.append(stats)
            if on_trace is not None:
                on_trace(stats)
    finally:
        if replayer is not None:
            replayer.close()
    return ReplayResult(alerts, traces, time.perf_counter() - t0, len(ruleset.rules))


__all__ = ["ReplayedAlert", "Replayer", "ReplayResult", "TraceStats", "replay", "wall_offset_ns"]
