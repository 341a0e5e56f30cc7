"""What a rule firing produces: an :class:`Alert`, and its JSON forms (docs/events.md).

:meth:`Alert.record` is our alert record (:class:`coi_sentinel.records.AlertRecord`): Falco's
keys (``time``, ``hostname``, ``priority``, ``rule``, ``output``, ``output_fields``, ``tags``,
``source``) plus our own (``severity``,
session, container, process, ancestry, ``rule_location``...). :meth:`Alert.to_falco` is exactly
Falco's JSON alert, for falcosidekick and other Falco consumers.

An alert's ``ts_ns`` is the kernel's monotonic clock; ``time`` is wall-clock time, so the caller
says how to get from one to the other (``wall_offset_ns``): live, the offset now; replayed, the
recorded trace's own (its header's ``start_time`` and ``start_ns``).
"""

from __future__ import annotations

import functools
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..action import Action
from ..events import codec
from ..events.model import Event
from ..records import SOURCE, AlertRecord, ProcessInfo
from .model import Severity


def rfc3339_ns(wall_ns: int) -> str:
    """ns since the epoch -> ``2026-12-02T23:59:01.123456789Z`` (Falco's form)."""
    sec, ns = divmod(wall_ns, 1_000_000_000)
    return _utc_second(sec) + f".{ns:09d}Z"


@functools.lru_cache(maxsize=64)
def _utc_second(sec: int) -> str:
    """``2026-12-02T23:59:01`` of a second since the epoch: alerts come in bursts of the same
    few seconds, and formatting the second is a seventh of making an alert's record."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    severity: Severity
    output: str
    ts_ns: int                      # time of the event that completed the match
    events: tuple[Event, ...]       # one, or every step of a sequence in step order
    process: ProcessInfo            # the process of the last event
    ancestry: tuple[ProcessInfo, ...]   # parent first
    container: str
    scope_id: int                   # container-level cgroup id of the last event
    session_id: str | None
    session_tool: str | None
    tags: tuple[str, ...]
    action: str | None              # the rule's action override; None: the default for the severity
    source: str                     # path:line of the rule ("rule_location" in the record)
    kind: str                       # "event", "sequence" or "threshold"
    value: int | None = None        # threshold: the total that went above the limit
    #: every field the output template names -> its typed value (None where it has none)
    output_fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event(self) -> Event:
        return self.events[-1]

    def record(self, *, wall_offset_ns: int | None = None, hostname: str | None = None) -> AlertRecord:
        """Our alert record. ``wall_offset_ns`` added to ``ts_ns`` gives ns since the epoch
        (default: the live clocks' offset now); ``hostname`` defaults to this host's."""
        return AlertRecord(
            rule=self.rule, severity=self.severity, output=self.output, time=self.time(wall_offset_ns),
            hostname=hostname if hostname is not None else socket.gethostname(), ts_ns=self.ts_ns,
            kind=self.kind, container=self.container, scope_id=self.scope_id,
            session_id=self.session_id, session_tool=self.session_tool, process=self.process,
            ancestry=self.ancestry, action=Action(self.action) if self.action else None,
            rule_location=self.source, output_fields=dict(self.output_fields), tags=self.tags,
            events=tuple(codec.to_dict(e) for e in self.events), value=self.value)

    def to_dict(self, *, wall_offset_ns: int | None = None, hostname: str | None = None) -> dict[str, Any]:
        """:meth:`record` as JSON (the one codec: :func:`coi_sentinel.records.to_dict`)."""
        return self.record(wall_offset_ns=wall_offset_ns, hostname=hostname).to_dict()

    def to_falco(self, *, wall_offset_ns: int | None = None, hostname: str | None = None) -> dict[str, Any]:
        """Exactly Falco's JSON alert: these eight keys, Falco's types and priority names."""
        return {      # Falco's shape, not a record of ours
            "time": self.time(wall_offset_ns),
            "rule": self.rule,
            "priority": self.severity.falco,
            "source": SOURCE,
            "hostname": hostname if hostname is not None else socket.gethostname(),
            "output": self.output,
            "tags": list(self.tags),
            "output_fields": dict(self.output_fields),
        }

    def time(self, wall_offset_ns: int | None = None) -> str:
        """The event's wall-clock time, RFC 3339 UTC with nanoseconds."""
        if wall_offset_ns is None:
            wall_offset_ns = time.time_ns() - time.monotonic_ns()
        return rfc3339_ns(self.ts_ns + wall_offset_ns)

    def __str__(self) -> str:
        return f"{self.severity.label.upper()} {self.rule}: {self.output}"
