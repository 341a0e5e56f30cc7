"""What a rule firing produces: an :class:`Alert`, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..events import codec
from ..events.model import Event
from ..events.proctable import Process
from .model import Severity


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of a process when the alert was made (the table keeps changing)."""

    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: str
    uid: int

    @classmethod
    def of(cls, p: Process) -> "ProcessInfo":
        return cls(p.pid, p.ppid, p.name, p.exe, p.cmdline, p.uid)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "name": self.name, "exe": self.exe,
                "cmdline": self.cmdline, "uid": self.uid}


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
    source: str                     # path:line of the rule
    kind: str                       # "event", "sequence" or "threshold"
    value: int | None = None        # threshold: the total that went above the limit

    @property
    def event(self) -> Event:
        return self.events[-1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "alert",
            "ts_ns": self.ts_ns,
            "rule": self.rule,
            "severity": self.severity.label,
            "output": self.output,
            "kind": self.kind,
            "container": self.container,
            "scope_id": self.scope_id,
            "session": {"id": self.session_id, "tool": self.session_tool},
            "process": self.process.to_dict(),
            "ancestry": [a.to_dict() for a in self.ancestry],
            "tags": list(self.tags),
            "action": self.action,
            "source": self.source,
            "events": [codec.to_dict(e) for e in self.events],
        }
        if self.value is not None:
            d["value"] = self.value
        return d

    def __str__(self) -> str:
        return f"{self.severity.label.upper()} {self.rule}: {self.output}"
