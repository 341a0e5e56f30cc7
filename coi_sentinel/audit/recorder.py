"""The flight recorder: the last N seconds / M events of each scope, kept in memory so that when
an alert fires, the log can show what led up to it.

A scope is an event's ``scope_id`` (a container, or a watched cgroup). Memory is bounded three
ways: per scope by time (events older than ``seconds`` before the scope's newest event are
dropped; time is the events' own ``ts_ns``, so replay behaves as live) and by count
(``max_events``), and across scopes by ``max_scopes`` (the least recently active scope is
forgotten first). At most ``max_scopes * max_events`` events are held.

:meth:`FlightRecorder.take` hands a scope's events over and empties its ring, so a second alert
in the same scope gets only the events since the first, never the same event twice.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..events.model import Event


@dataclass(slots=True)
class _Ring:
    events: deque[Event]
    overflow: int = 0            # events inside the window pushed out by max_events


@dataclass(frozen=True, slots=True)
class Context:
    """The pre-trigger events of one scope."""

    scope_id: int
    events: list[Event] = field(default_factory=list)
    #: events of the time window lost to the count bound: the context starts later than
    #: ``seconds`` before the trigger
    overflow: int = 0

    @property
    def complete(self) -> bool:
        return self.overflow == 0


class FlightRecorder:
    def __init__(self, seconds: float = 30.0, max_events: int = 2000, max_scopes: int = 256) -> None:
        if seconds <= 0 or max_events < 1 or max_scopes < 1:
            raise ValueError("flight recorder bounds must be positive")
        self.seconds = seconds
        self.max_events = max_events
        self.max_scopes = max_scopes
        self._window_ns = int(seconds * 1e9)
        self._rings: OrderedDict[int, _Ring] = OrderedDict()
        #: scopes forgotten because more than max_scopes were active
        self.evicted_scopes = 0

    def add(self, event: Event) -> None:
        scope = event.scope_id
        ring = self._rings.get(scope)
        if ring is None:
            ring = self._rings[scope] = _Ring(deque(maxlen=self.max_events))
            if len(self._rings) > self.max_scopes:
                self._rings.popitem(last=False)
                self.evicted_scopes += 1
        else:
            self._rings.move_to_end(scope)
        events = ring.events
        cutoff = event.ts_ns - self._window_ns
        while events and events[0].ts_ns < cutoff:
            events.popleft()
        if len(events) == self.max_events:
            ring.overflow += 1
        events.append(event)

    def __call__(self, event: Event, process: object = None) -> None:
        """A pipeline sink."""
        self.add(event)

    def take(self, scope_id: int) -> Context:
        """The scope's recorded events, oldest first; the scope's ring is emptied."""
        ring = self._rings.pop(scope_id, None)
        if ring is None:
            return Context(scope_id)
        return Context(scope_id, list(ring.events), ring.overflow)

    def peek(self, scope_id: int) -> list[Event]:
        ring = self._rings.get(scope_id)
        return list(ring.events) if ring is not None else []

    def scopes(self) -> list[int]:
        return list(self._rings)

    def __len__(self) -> int:
        """Events held, all scopes."""
        return sum(len(r.events) for r in self._rings.values())

    def clear(self) -> None:
        self._rings.clear()
