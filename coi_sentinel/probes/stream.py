"""From the ring buffers to the pipeline: read, decode, order, summarise, dispatch.

Each :meth:`EventStream.poll` waits up to ``poll_ms`` for the high-priority ring (the kernel
wakes the reader for it), then drains the high-priority ring and at most :data:`BULK_BUDGET`
records of the bulk ring, decodes the raw records, orders them by kernel timestamp and feeds
them to the :class:`~coi_sentinel.pipeline.Pipeline`. When the reader cannot keep up with a
flood of bulk records, exec, connect and the other high-priority records therefore wait for
one budget of bulk work at most (not for a whole ring), and the next poll does not sleep; the
bulk ring fills and its losses are counted, as they were before. Kernel
aggregates are turned into summary events on process exit and every ``sweep_interval``.
Everything lost is counted: ring-buffer drops (kernel, per type), full aggregation maps, and
records that did not decode.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from ..errors import EventDecodeError
from ..events import model
from ..events.decode import Decoder
from ..pipeline import Pipeline
from .aggregates import Aggregates
from .cgroups import ContainerNames
from .loader import ProbeSet

log = logging.getLogger(__name__)

#: bulk records taken per poll: a high-priority record waits at most for this much work
#: (about 10 ms of the watch path's per-event cost)
BULK_BUDGET = 512


@dataclass(slots=True)
class StreamStats:
    events: Counter = field(default_factory=Counter)
    decode_errors: int = 0
    polls: int = 0
    started_ns: int = field(default_factory=time.monotonic_ns)
    #: kernel ts -> handled in Python, ns, for exec events (bounded)
    exec_latency_ns: deque = field(default_factory=lambda: deque(maxlen=100_000))


class EventStream:
    def __init__(self, probes: ProbeSet, pipeline: Pipeline, *,
                 resolve: Callable[[int], str] | None = None,
                 sweep_interval: float = 1.0, poll_ms: int = 5) -> None:
        if probes.bpf is None:
            raise ValueError("load the probes before opening the stream")
        self.probes = probes
        self.pipeline = pipeline
        self.decoder = Decoder(resolve or ContainerNames())
        self.aggregates = Aggregates(probes.bpf, self.decoder, pipeline.table)
        self.sweep_interval = sweep_interval
        self.poll_ms = poll_ms
        self.stats = StreamStats()
        self._raw: list[bytes] = []
        self._last_sweep = time.monotonic()
        self._bulk_left = BULK_BUDGET
        #: polls that left bulk records in the ring (the reader is behind)
        self.behind = 0
        self._behind = False
        b = probes.bpf
        # the high-priority ring first: libbpf consumes the rings in the order they were opened,
        # and a bulk callback that has used its budget stops the rest of that drain (the
        # events are ordered by timestamp afterwards, so this order costs nothing else)
        b[b"events_hi"].open_ring_buffer(self._on_raw)
        b[b"events_bulk"].open_ring_buffer(self._on_bulk)

    @property
    def lagging(self) -> bool:
        """The last poll left bulk records in the ring (poll again to take them)."""
        return self._behind

    def _on_raw(self, _ctx, data, size) -> int:
        self._raw.append(ctypes.string_at(data, size))
        return 0

    def _on_bulk(self, _ctx, data, size) -> int:
        self._raw.append(ctypes.string_at(data, size))
        self._bulk_left -= 1
        return 0 if self._bulk_left > 0 else -1     # -1: this record is taken, stop the drain

    def poll(self, timeout_ms: int | None = None) -> int:
        """Wait for and handle what the probes sent. Returns the number of events fed."""
        b = self.probes.bpf
        if self._behind:
            timeout_ms = 0                          # bulk records are waiting: no sleep
        self._bulk_left = BULK_BUDGET
        b.ring_buffer_poll(self.poll_ms if timeout_ms is None else timeout_ms)
        # always: when the wait's own drain stopped at the bulk budget, this takes the
        # high-priority ring (and one more bulk record)
        b.ring_buffer_consume()
        self._behind = self._bulk_left <= 0
        self.behind += self._behind
        self.stats.polls += 1
        n = self._dispatch()
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_interval:
            self._last_sweep = now
            n += self._feed_all(self.aggregates.sweep())
        return n

    def _dispatch(self) -> int:
        raws, self._raw = self._raw, []
        if not raws:
            return 0
        events: list[model.Event] = []
        decode = self.decoder.decode
        for raw in raws:
            try:
                events.append(decode(raw))
            except EventDecodeError as err:
                self.stats.decode_errors += 1
                if self.stats.decode_errors <= 5:
                    log.warning("dropped an undecodable record: %s", err)
        events.sort(key=_ts)
        fed = 0
        now_ns = time.monotonic_ns()
        for ev in events:
            if isinstance(ev, model.NetSendEvent):
                ev = self.aggregates.socket_closed(ev)
                if ev is None:
                    continue
            elif isinstance(ev, model.ExitEvent):
                fed += self._feed_all(self.aggregates.flush_pid(ev.pid))
            elif isinstance(ev, model.ExecEvent):
                self.stats.exec_latency_ns.append(now_ns - ev.ts_ns)
            self._feed(ev)
            fed += 1
            if isinstance(ev, model.FileOpenEvent):
                self.aggregates.note_file_open(ev)
            elif isinstance(ev, model.ConnectEvent):
                self.aggregates.note_connect(ev)
        return fed

    def _feed(self, ev: model.Event) -> None:
        self.stats.events[ev.type.label] += 1
        self.pipeline.feed(ev)

    def _feed_all(self, events: list[model.Event]) -> int:
        for ev in events:
            self._feed(ev)
        return len(events)

    def drain(self) -> int:
        """Take everything still queued and flush every aggregate (at stop)."""
        b = self.probes.bpf
        self._bulk_left = 1 << 62
        b.ring_buffer_consume()
        n = self._dispatch()
        return n + self._feed_all(self.aggregates.sweep(final=True))

    def summary(self) -> dict:
        return {
            "events": dict(self.stats.events),
            "drops": self.probes.drop_counts(),
            "aggregation_maps_full": self.probes.agg_full_counts(),
            "decode_errors": self.stats.decode_errors,
            "polls_behind": self.behind,
            "seconds": round((time.monotonic_ns() - self.stats.started_ns) / 1e9, 3),
        }


def _ts(ev: model.Event) -> int:
    return ev.ts_ns
