"""Reading audit logs back for people: which files, and the alerts and actions in them.

``audit show``, ``audit verify`` and ``audit export`` name logs the same way: a session name
(its log under the log directory), the active file of a log (all its files), a single rotated
file, or a directory (every log file in it).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import AuditError
from ..events.model import Event
from ..trace.format import parse_iso_time
from ..trace.reader import TraceReader
from . import severity
from .files import log_files, rotated_files, session_log_path
from .policy import parse_duration

_LOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def resolve_sources(names: Iterable[str], log_dir: str | os.PathLike[str]) -> list[Path]:
    """Files for the given names, each once, in the order given (a log's files in order)."""
    out: list[Path] = []
    for name in names:
        p = Path(name)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(_LOG_SUFFIXES))
        elif p.exists():
            found = log_files(p) if rotated_files(p) else [p]
        elif os.sep not in name and not name.endswith(_LOG_SUFFIXES):
            found = log_files(session_log_path(name, log_dir))
            if not found:
                raise AuditError(f"no audit log for session {name!r} in {log_dir}",
                                 hint="give a file, or --log-dir")
        else:
            raise AuditError(f"{name}: no such file")
        if not found:
            raise AuditError(f"{name}: no audit log files there")
        for f in found:
            if f not in out:
                out.append(f)
    return out


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an ISO time (``2024-05-01T12:00``, UTC unless an offset is given) or a
    duration ago (``90s``, ``15m``, ``2h``, ``3d``); seconds since the epoch."""
    try:
        return (time.time() if now is None else now) - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_iso_time(text)
    except ValueError:
        raise ValueError(f"not a time or a duration: {text!r} (examples: 2h, 30m, "
                         "2024-05-01T12:00)") from None


@dataclass(slots=True)
class Entry:
    """An alert or action record, where it is, and (alerts) the events logged as its context."""

    path: str
    line: int
    record: dict[str, Any]
    context: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class LogSummary:
    files: list[str] = field(default_factory=list)
    alerts: list[Entry] = field(default_factory=list)
    actions: list[Entry] = field(default_factory=list)
    records: Counter[str] = field(default_factory=Counter)
    events: int = 0
    #: drops records (kernel, writer) as written
    drops: list[dict[str, Any]] = field(default_factory=list)
    monitor: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    first_time: str | None = None
    last_time: str | None = None


@dataclass(frozen=True, slots=True)
class Filter:
    since: float | None = None
    min_severity: int | None = None
    rules: tuple[str, ...] = ()

    def time_ok(self, rec: dict[str, Any]) -> bool:
        if self.since is None:
            return True
        t = rec.get("time")
        if not isinstance(t, str):
            return True
        try:
            return parse_iso_time(t) >= self.since
        except ValueError:
            return True

    def rule_ok(self, rec: dict[str, Any]) -> bool:
        if not self.rules:
            return True
        rule = rec.get("rule", rec.get("rule_id"))
        return isinstance(rule, str) and any(fnmatch.fnmatchcase(rule, pat) for pat in self.rules)

    def alert_ok(self, rec: dict[str, Any]) -> bool:
        if self.min_severity is not None and severity.rank(severity.of_alert(rec)) < self.min_severity:
            return False
        return self.time_ok(rec) and self.rule_ok(rec)

    def action_ok(self, rec: dict[str, Any]) -> bool:
        if self.rules and "rule" not in rec and "rule_id" not in rec:
            return False
        return self.time_ok(rec) and self.rule_ok(rec)


def collect(paths: Iterable[str | os.PathLike[str]], flt: Filter | None = None) -> LogSummary:
    """Read logs leniently (a damaged line is counted, not fatal: ``verify`` judges damage)."""
    flt = flt or Filter()
    out = LogSummary()
    for path in paths:
        out.files.append(os.fspath(path))
        with TraceReader(path, lenient=True) as trace:
            start = trace.header.get("start_time")
            if isinstance(start, str) and out.first_time is None:
                out.first_time = start
            context: list[Event] = []
            expect = 0
            for lineno, item in trace:
                if isinstance(item, Event):
                    out.events += 1
                    if expect:
                        context.append(item)
                        expect -= 1
                    continue
                kind = item["record"]
                out.records[kind] += 1
                t = item.get("time")
                if isinstance(t, str):
                    out.last_time = t
                if kind == "context":
                    context, expect = [], int(item.get("events") or 0)
                elif kind == "alert":
                    if flt.alert_ok(item):
                        out.alerts.append(Entry(trace.source, lineno, item, context))
                    context, expect = [], 0
                elif kind == "action":
                    if flt.action_ok(item):
                        out.actions.append(Entry(trace.source, lineno, item))
                elif kind == "drops":
                    out.drops.append(item)
                elif kind == "monitor":
                    out.monitor.append(item)
                elif kind == "footer":
                    end = item.get("end_time")
                    if isinstance(end, str):
                        out.last_time = end
            out.skipped.update(trace.skipped)
    return out
