"""Typed records and their one codec: what the sentinel writes besides events.

Every record is a frozen dataclass with a :attr:`KIND`; on the wire (audit logs, traces, the
daemon's socket stream, ``watch --json``, the outputs) it is one flat JSON object whose first key
is ``"record"`` (docs/events.md#records):

==============  ====================  ================================================
``record``      class                 written when
==============  ====================  ================================================
``alert``       :class:`AlertRecord`  a rule fired (also ``"type": "alert"``)
``action``      :class:`ActionRecord` a response was taken (or failed, or not needed)
``drops``       :class:`DropsRecord`  events were lost (kernel ring buffer, the writer)
``monitor``     :class:`MonitorRecord` the monitor started, stopped, reloaded rules...
``context``     :class:`ContextRecord` the flight recorder's events before an alert
``outputs``     :class:`OutputsRecord` the outputs' final status
``output_loss`` :class:`OutputLossRecord` alerts an output could not deliver
==============  ====================  ================================================

:func:`to_dict` / :func:`from_dict` and :func:`dumps` / :func:`loads` are the codec; nothing
else builds a record's dict (a unit test walks the package for ``{"record": ...}`` literals).
Decoding keeps keys it does not know in ``extra`` (a newer writer's), so a record read and
written again is unchanged. The vocabulary is :class:`~coi_sentinel.severity.Severity` and
:class:`~coi_sentinel.action.Action`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Union

import orjson

from .action import Action
from .errors import RecordError
from .severity import Severity

#: Falco's event source of every alert we raise: system calls seen in the kernel
SOURCE = "syscall"


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A process as a record names it (a snapshot: the process table keeps changing)."""

    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: str
    uid: int

    @classmethod
    def of(cls, p: Any) -> "ProcessInfo":
        """From a process table entry (anything with these attributes)."""
        return cls(p.pid, p.ppid, p.name, p.exe, p.cmdline, p.uid)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "name": self.name, "exe": self.exe,
                "cmdline": self.cmdline, "uid": self.uid}

    @classmethod
    def from_dict(cls, d: Any) -> "ProcessInfo":
        if not isinstance(d, Mapping):
            raise RecordError(f"a process must be an object, not {type(d).__name__}")
        return cls(_int(d.get("pid"), 0), _int(d.get("ppid"), 0), str(d.get("name") or ""),
                   str(d.get("exe") or ""), str(d.get("cmdline") or ""), _int(d.get("uid"), 0))


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A rule fired. ``time`` is the event's wall-clock time (RFC 3339, ns); ``ts_ns`` the
    kernel's monotonic clock; ``rule_location`` the rule's ``path:line``."""

    KIND: ClassVar[str] = "alert"

    rule: str
    severity: Severity
    output: str
    time: str
    hostname: str
    ts_ns: int
    kind: str = "event"                 # event, sequence or threshold
    container: str = ""
    scope_id: int = 0
    session_id: str | None = None
    session_tool: str | None = None
    process: ProcessInfo | None = None
    ancestry: tuple[ProcessInfo, ...] = ()
    #: the rule's own action; None: the default for its severity
    action: Action | None = None
    rule_location: str = ""
    output_fields: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    #: the events that made it, as the event codec writes them (one, or a sequence's steps)
    events: tuple[Mapping[str, Any], ...] = ()
    value: int | None = None            # threshold: the total that went above the limit
    source: str = SOURCE
    #: replayed: the trace and line of the event that completed it
    trace: str | None = None
    line: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> str:
        return self.severity.falco

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "record": self.KIND, "type": "alert", "time": self.time, "hostname": self.hostname,
            "rule": self.rule, "priority": self.priority, "severity": self.severity.label,
            "output": self.output, "output_fields": dict(self.output_fields), "tags": list(self.tags),
            "source": self.source, "ts_ns": self.ts_ns, "kind": self.kind,
            "container": self.container, "scope_id": self.scope_id,
            "session": {"id": self.session_id, "tool": self.session_tool},
            "process": self.process.to_dict() if self.process is not None else None,
            "ancestry": [a.to_dict() for a in self.ancestry],
            "action": self.action.value if self.action is not None else None,
            "rule_location": self.rule_location, "events": [dict(e) for e in self.events],
        }
        for key in ("value", "trace", "line"):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AlertRecord":
        sev = Severity.lookup(d.get("severity")) or Severity.lookup(d.get("priority"))
        if sev is None:
            raise RecordError(f"alert {d.get('rule')!r}: no known severity or priority")
        session = d.get("session") if isinstance(d.get("session"), Mapping) else {}
        proc = d.get("process")
        action = d.get("action")
        known = _ALERT_KEYS
        return cls(
            rule=_str(d, "rule"), severity=sev, output=str(d.get("output") or ""),
            time=str(d.get("time") or ""), hostname=str(d.get("hostname") or ""),
            ts_ns=_int(d.get("ts_ns"), 0), kind=str(d.get("kind") or "event"),
            container=str(d.get("container") or ""), scope_id=_int(d.get("scope_id"), 0),
            session_id=session.get("id"), session_tool=session.get("tool"),
            process=ProcessInfo.from_dict(proc) if proc is not None else None,
            ancestry=tuple(ProcessInfo.from_dict(a) for a in d.get("ancestry") or ()),
            action=_action(action) if action is not None else None,
            rule_location=str(d.get("rule_location") or ""),
            output_fields=dict(d.get("output_fields") or {}), tags=tuple(d.get("tags") or ()),
            events=tuple(dict(e) for e in d.get("events") or ()),
            value=d.get("value"), source=str(d.get("source") or SOURCE),
            trace=d.get("trace"), line=d.get("line"),
            extra={k: v for k, v in d.items() if k not in known})


_ALERT_KEYS = frozenset({"record", "type", "time", "hostname", "rule", "priority", "severity",
                         "output", "output_fields", "tags", "source", "ts_ns", "kind", "container",
                         "scope_id", "session", "process", "ancestry", "action", "rule_location",
                         "events", "value", "trace", "line"})


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A response taken, failed, or not needed (``skipped`` says why). ``by``: ``rules``,
    ``kernel`` (an in-kernel kill), ``monitor`` (failing closed), ``guardian``, ``user``,
    ``daemon``, ``outside`` (a freeze noticed)."""

    KIND: ClassVar[str] = "action"

    action: Action
    by: str
    ok: bool
    rule: str | None = None
    severity: Severity | None = None
    container: str | None = None
    pid: int | None = None
    #: the acting process: name, exe, cmdline (what the kernel knew: name only)
    process: Mapping[str, Any] | None = None
    output: str | None = None
    reason: str | None = None
    event_ts_ns: int | None = None
    target: str | None = None
    freeze_ns: int | None = None
    kill_ns: int | None = None
    killed_pids: tuple[int, ...] | None = None
    blocked: str | None = None
    skipped: str | None = None
    noticed: bool | None = None
    error: str | None = None
    #: from the event's kernel time to the action done
    latency_ns: int | None = None
    ts_ns: int | None = None
    time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """It happened: ok and not skipped."""
        return self.ok and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        d = _head(self)
        d["action"] = self.action.value
        d["by"] = self.by
        for f in _ACTION_OPTIONAL:
            v = getattr(self, f)
            if v is not None:
                d[f] = v.label if f == "severity" else list(v) if f == "killed_pids" else \
                    dict(v) if f == "process" else v
        d["ok"] = self.ok
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ActionRecord":
        kw: dict[str, Any] = {k: d[k] for k in _ACTION_OPTIONAL if d.get(k) is not None}
        if "severity" in kw:
            kw["severity"] = Severity.lookup(kw["severity"])
        if "killed_pids" in kw:
            kw["killed_pids"] = tuple(kw["killed_pids"])
        if "process" in kw:
            kw["process"] = dict(kw["process"])
        return cls(action=_action(d.get("action")), by=str(d.get("by") or "?"), ok=bool(d.get("ok")),
                   time=d.get("time"), extra=_extra(d, _ACTION_KEYS), **kw)


_ACTION_OPTIONAL = ("rule", "severity", "container", "pid", "process", "output", "reason",
                    "event_ts_ns", "target", "freeze_ns", "kill_ns", "killed_pids", "blocked",
                    "skipped", "noticed", "error", "latency_ns", "ts_ns")
_ACTION_KEYS = frozenset({"record", "time", "action", "by", "ok", *_ACTION_OPTIONAL})


@dataclass(frozen=True, slots=True)
class DropsRecord:
    """Events lost, by event type (``counts``: the kernel's per-CPU counters); ``source``
    ``writer`` with ``reason`` and ``lost``: lines a log writer could not keep."""

    KIND: ClassVar[str] = "drops"

    counts: Mapping[str, int] | None = None
    source: str | None = None
    reason: str | None = None
    lost: int | None = None
    time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(v for v in (self.counts or {}).values() if isinstance(v, int)) + (self.lost or 0)


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    """What the monitor did: ``event`` is one of :data:`MONITOR_EVENTS`; ``detail`` its own
    fields (``rules``, ``rules_hash``, ``summary``...), written flat beside ``event``."""

    KIND: ClassVar[str] = "monitor"

    event: str
    by: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    time: str | None = None


#: the monitor's events (docs/events.md#records)
MONITOR_EVENTS = ("start", "stop", "rules-reloaded", "re-adopted", "orphaned", "guardian-restarted",
                  "retention", "write_error", "error")


@dataclass(frozen=True, slots=True)
class ContextRecord:
    """The ``events`` that follow it are the flight recorder's, of ``scope_id``, before
    ``rule``'s alert."""

    KIND: ClassVar[str] = "context"

    scope_id: int
    container: str
    events: int
    from_ns: int
    to_ns: int
    seconds: float
    overflow: int
    rule: str | None = None
    time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutputsRecord:
    """Every output's status at the end (delivered, lost by reason...)."""

    KIND: ClassVar[str] = "outputs"

    status: Mapping[str, Any] = field(default_factory=dict)
    time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutputLossRecord:
    """Alerts the outputs could not deliver since the last such record: output -> reason -> n."""

    KIND: ClassVar[str] = "output_loss"

    lost: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


Record = Union[AlertRecord, ActionRecord, DropsRecord, MonitorRecord, ContextRecord, OutputsRecord,
               OutputLossRecord]

#: ``record`` value -> class
KINDS: dict[str, type] = {cls.KIND: cls for cls in (AlertRecord, ActionRecord, DropsRecord, MonitorRecord,
                                                    ContextRecord, OutputsRecord, OutputLossRecord)}


# ---------------------------------------------------------------- the codec
def to_dict(rec: Record) -> dict[str, Any]:
    """The record as one flat JSON object, ``"record"`` first."""
    own = getattr(rec, "to_dict", None)
    if own is not None:
        return own()
    d = _head(rec)
    if isinstance(rec, MonitorRecord):
        d["event"] = rec.event
        if rec.by is not None:
            d["by"] = rec.by
        d.update(rec.detail)
        return d
    for f in dataclasses.fields(rec):
        if f.name in ("time", "extra"):
            continue
        v = getattr(rec, f.name)
        if v is not None:
            d[f.name] = dict(v) if isinstance(v, Mapping) else v
    d.update(getattr(rec, "extra", {}))
    return d


def from_dict(d: Mapping[str, Any]) -> Record:
    """A record from its JSON object (an alert may lack ``"record"`` if it has ``"type":
    "alert"``); RecordError when it is none of :data:`KINDS` or is malformed."""
    if not isinstance(d, Mapping):
        raise RecordError(f"a record is a JSON object, not {type(d).__name__}")
    kind = d.get("record")
    if kind is None and d.get("type") == "alert":
        kind = "alert"
    cls = KINDS.get(kind)       # type: ignore[arg-type]
    if cls is None:
        raise RecordError(f"unknown record {kind!r} (one of: {', '.join(KINDS)})")
    try:
        own = getattr(cls, "from_dict", None)
        if own is not None:
            return own(d)
        if cls is MonitorRecord:
            if not isinstance(d.get("event"), str):
                raise RecordError("a monitor record needs an event")
            return MonitorRecord(d["event"], d.get("by"),
                                 {k: v for k, v in d.items() if k not in ("record", "time", "event", "by")},
                                 d.get("time"))
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw = {k: d[k] for k in names if k in d}
        return cls(**kw, extra=_extra(d, names | {"record"}))
    except (TypeError, ValueError, AttributeError) as err:
        raise RecordError(f"malformed {kind} record: {err}") from None


def dumps(rec: Record) -> bytes:
    """The record's JSON (no newline).

    The last alert's bytes are kept: an alert goes to the terminal and to every output, and
    records are frozen, so the next call for the same one reuses them."""
    global _last
    last = _last
    if last[0] is rec:
        return last[1]
    data = orjson.dumps(to_dict(rec))
    if type(rec) is AlertRecord:
        _last = (rec, data)     # one assignment: a thread reading it sees the old pair or the new
    return data


_last: tuple[Any, bytes] = (None, b"")


def loads(data: bytes | str) -> Record:
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise RecordError(f"not JSON: {err}") from None
    return from_dict(d)


def stamped(rec: Record, time: str) -> Record:
    """The record with ``time`` set, when it has none (the audit log stamps what it writes)."""
    return rec if rec.time else dataclasses.replace(rec, time=time)


def kind_of(d: Mapping[str, Any]) -> str | None:
    """What kind of record a decoded line is (None: an event, or not a record)."""
    kind = d.get("record")
    return kind if isinstance(kind, str) else None


def untyped(kind: Any, d: Mapping[str, Any], *, time: str | None = None) -> dict[str, Any]:
    """A record given as a plain mapping (tools, tests, another writer's line), kept as it is
    with ``record`` first and ``time`` (when given and it has none) second."""
    out: dict[str, Any] = {"record": kind}
    if time is not None and "time" not in d:
        out["time"] = time
    out.update((k, v) for k, v in d.items() if k != "record")
    return out


def _head(rec: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"record": rec.KIND}
    if rec.time is not None:
        d["time"] = rec.time
    return d


def _extra(d: Mapping[str, Any], known: frozenset[str] | set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


def _action(value: Any) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise RecordError(f"unknown action {value!r}") from None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise RecordError(f"{key} must be a string, not {type(v).__name__}")
    return v


__all__ = ["ActionRecord", "AlertRecord", "ContextRecord", "DropsRecord", "KINDS", "MONITOR_EVENTS",
           "MonitorRecord", "OutputLossRecord", "OutputsRecord", "ProcessInfo", "Record", "SOURCE",
           "dumps", "from_dict", "kind_of", "loads", "stamped", "to_dict", "untyped"]
