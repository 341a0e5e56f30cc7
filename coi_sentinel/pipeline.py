"""The event pipeline: one place where events meet the process table and the consumers.

Live (``watch``, ``run``) and replay feed the same :class:`Pipeline`, so a rule sees exactly the
same thing either way. A sink is any callable taking ``(event, process)``; the process table is
already updated with the event when sinks are called. Sinks that hold resources may also have
a ``close()`` method, called once by :meth:`Pipeline.close`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Protocol

from .events.model import Event
from .events.proctable import Process, ProcessTable

log = logging.getLogger(__name__)


class Sink(Protocol):
    def __call__(self, event: Event, process: Process) -> None: ...


class Pipeline:
    def __init__(self, table: ProcessTable | None = None) -> None:
        self.table = table if table is not None else ProcessTable()
        self.sinks: list[Callable[[Event, Process], None]] = []
        self.counts: Counter[str] = Counter()

    def add_sink(self, sink: Callable[[Event, Process], None]) -> None:
        self.sinks.append(sink)

    def feed(self, event: Event) -> None:
        process = self.table.apply(event)
        self.counts[event.type.label] += 1
        for sink in self.sinks:
            sink(event, process)

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
