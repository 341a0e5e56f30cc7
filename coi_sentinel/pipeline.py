"""The event pipeline: one place where events meet the process table and the consumers.

Live (``watch``, ``run``) and replay feed the same :class:`Pipeline`, so a rule sees exactly the
same thing either way. A sink is any callable taking ``(event, process)``; the process table is
already updated with the event when sinks are called. Sinks that hold resources may also have
a ``close()`` method, called once by :meth:`Pipeline.close`, and an ``end_batch()`` method,
called by :meth:`Pipeline.end_batch` once the events read together from the kernel (one poll
of the ring buffers) have all been handled: the audit log syncs there what its alerts owe the
disk, after every alert of the batch was acted on and printed.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterable, Protocol

from .events.model import Event
from .events.proctable import Process, ProcessTable

log = logging.getLogger(__name__)


class Sink(Protocol):
    def __call__(self, event: Event, process: Process) -> None: ...


class Pipeline:
    def __init__(self, table: ProcessTable | None = None) -> None:
        self.table = table if table is not None else ProcessTable()
        self.sinks: list[Callable[[Event, Process], None]] = []
        #: event class -> events fed (by class: a label costs a property call per event)
        self._by_class: dict[type, int] = {}
        self._batch_ends: list[Callable[[], None]] = []

    @property
    def counts(self) -> Counter[str]:
        """Events fed, by type label."""
        return Counter({cls.type.label: n for cls, n in dict(self._by_class).items()})

    def add_sink(self, sink: Callable[[Event, Process], None]) -> None:
        self.sinks.append(sink)
        end = getattr(sink, "end_batch", None)
        if callable(end):
            self.add_batch_end(end)

    def add_batch_end(self, end: Callable[[], None]) -> None:
        """Call ``end`` at each :meth:`end_batch` (what a consumer that is no sink batches)."""
        self._batch_ends.append(end)

    def feed(self, event: Event) -> None:
        process = self.table.apply(event)
        by = self._by_class
        cls = type(event)
        by[cls] = by.get(cls, 0) + 1
        for sink in self.sinks:
            sink(event, process)

    def feed_all(self, events: Iterable[Event]) -> int:
        """:meth:`feed` each event, in order (one call for a batch). Returns how many. The
        sinks are those of the call's start (one sink, the usual case, is called directly)."""
        apply = self.table.apply
        by = self._by_class
        sinks = self.sinks
        n = 0
        if len(sinks) == 1:         # replay, watch: the sentinel's lane alone, called directly
            sink = sinks[0]
            for event in events:
                process = apply(event)
                cls = type(event)
                by[cls] = by.get(cls, 0) + 1
                sink(event, process)
                n += 1
            return n
        for event in events:
            process = apply(event)
            cls = type(event)
            by[cls] = by.get(cls, 0) + 1
            for sink in sinks:
                sink(event, process)
            n += 1
        return n

    def end_batch(self) -> None:
        """The events read together are all handled: sinks finish what they batch."""
        for end in self._batch_ends:
            end()

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
