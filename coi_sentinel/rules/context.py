"""What compiled conditions may look up besides the event and its process.

:class:`EvalContext` is the ``E`` of the field expressions (:mod:`~coi_sentinel.rules.fields`):
the process table for ancestry, and a session lookup that the session layer provides. The
engine owns one; compiled code never reaches anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..events.model import Event
from ..events.proctable import Process, ProcessTable

#: how many generations ancestry fields and alerts look up
ANCESTRY_DEPTH = 16


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The session an event belongs to, as the session layer describes it."""

    id: str | None = None
    tool: str | None = None
    network: str | None = None      # "restricted", "allowlist" or "open"


NO_SESSION = SessionInfo()

#: maps an event to its session (or None); called at most once per event, and only when a rule
#: for that event type uses a session field or an alert is built
SessionLookup = Callable[[Event], "SessionInfo | None"]


class EvalContext:
    __slots__ = ("table", "session_of")

    def __init__(self, table: ProcessTable, session_of: SessionLookup | None = None) -> None:
        self.table = table
        self.session_of = session_of

    def ancestors(self, p: Process) -> list[Process]:
        return self.table.ancestors(p.pid, limit=ANCESTRY_DEPTH)

    def session(self, ev: Event) -> SessionInfo:
        if self.session_of is None:
            return NO_SESSION
        return self.session_of(ev) or NO_SESSION

    def is_descendant(self, pid: int, ancestor: int) -> bool:
        proc = self.table.get(pid)
        if proc is None:
            return False
        return any(a.pid == ancestor for a in self.table.ancestors(pid, limit=ANCESTRY_DEPTH))
