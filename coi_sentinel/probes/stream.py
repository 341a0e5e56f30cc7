"""From the ring buffers to the pipeline: read, decode, order, summarise, dispatch.

Each :meth:`EventStream.poll` waits up to ``poll_ms`` for the high-priority ring (the kernel
wakes the reader for it), then drains the high-priority ring and at most :data:`BULK_BUDGET`
records of the bulk ring - read straight from the rings' memory, a batch per call
(:mod:`.ringbuf`; bcc's per-record callbacks where that cannot be) - decodes the raw records, orders them by kernel timestamp and feeds
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
import select
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from ..errors import EventDecodeError
from ..events import model
from ..events.decode import Decoder
from ..pipeline import Pipeline
from . import ringbuf
from .aggregates import Aggregates
from ..host.cgroups import ContainerNames
from .loader import ProbeSet
from .paths import PathResolver
from .ringbuf import RingReader

log = logging.getLogger(__name__)

#: bulk records taken per poll: a high-priority record waits at most for this much work
#: (about 10 ms of the watch path's per-event cost)
BULK_BUDGET = 512


@dataclass(slots=True)
class StreamStats:
    pipeline: Pipeline | None = None
    decode_errors: int = 0
    polls: int = 0
    started_ns: int = field(default_factory=time.monotonic_ns)
    #: kernel ts -> handled in Python, ns, for exec events (bounded)
    exec_latency_ns: deque = field(default_factory=lambda: deque(maxlen=100_000))

    @property
    def events(self) -> Counter:
        """Events fed, by type (the pipeline's count: the stream is its only feeder)."""
        return self.pipeline.counts if self.pipeline is not None else Counter()


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
        self.paths = PathResolver(pipeline.table)
        self.sweep_interval = sweep_interval
        self.poll_ms = poll_ms
        self.stats = StreamStats(pipeline)
        self._raw: list[bytes] = []
        self._last_sweep = time.monotonic()
        self._bulk_left = BULK_BUDGET
        #: polls that left bulk records in the ring (the reader is behind)
        self.behind = 0
        self._behind = False
        #: what the aggregates note of an event once it is fed (by event class)
        self._after: dict[type, Callable[[model.Event], None]] = {
            model.FileOpenEvent: self.aggregates.note_file_open,
            model.ConnectEvent: self.aggregates.note_connect,
            model.AcceptEvent: self.aggregates.note_accept,
        }
        b = probes.bpf
        #: the rings read from their memory (ringbuf.py), or None: bcc's callbacks
        self._rings: tuple[RingReader, RingReader] | None = None
        self._epoll: select.epoll | None = None
        if ringbuf.supported():
            self._open_rings(b)
        if self._rings is None:
            # the high-priority ring first: libbpf consumes the rings in the order they were
            # opened, and a bulk callback that has used its budget stops the rest of that drain
            # (the events are ordered by timestamp afterwards, so this order costs nothing else)
            b[b"events_hi"].open_ring_buffer(self._on_raw)
            b[b"events_bulk"].open_ring_buffer(self._on_bulk)

    def _open_rings(self, b) -> None:
        opened: list[RingReader] = []
        try:
            for name in (b"events_hi", b"events_bulk"):
                table = b[name]
                opened.append(RingReader(table.map_fd, table.max_entries))
            ep = select.epoll()
            for table in (b[b"events_hi"], b[b"events_bulk"]):
                ep.register(table.map_fd, select.EPOLLIN)
        except (OSError, ValueError) as err:
            log.info("ring buffers read through bcc's callbacks: %s", err)
            for r in opened:
                r.close()
            return
        self._rings = (opened[0], opened[1])
        self._epoll = ep

    def close(self) -> None:
        """Unmap the ring buffers (the probes are closed by their owner)."""
        if self._rings is not None:
            for r in self._rings:
                r.close()
            self._rings = None
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

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

    def _read(self, timeout_ms: int, bulk_budget: int) -> None:
        """Wait up to ``timeout_ms`` for records, then take every high-priority record and at
        most ``bulk_budget`` bulk ones into ``self._raw``; ``self._bulk_left`` says what is left
        of the budget."""
        if self._rings is not None:
            assert self._epoll is not None
            hi, bulk = self._rings
            if timeout_ms and not (hi.pending() or bulk.pending()):
                self._epoll.poll(timeout_ms / 1000)
            hi.read(self._raw)
            self._bulk_left = bulk_budget - bulk.read(self._raw, bulk_budget)
            return
        b = self.probes.bpf
        self._bulk_left = bulk_budget
        if timeout_ms:
            b.ring_buffer_poll(timeout_ms)
        # always: when the wait's own drain stopped at the bulk budget, this takes the
        # high-priority ring (and one more bulk record)
        b.ring_buffer_consume()

    def poll(self, timeout_ms: int | None = None) -> int:
        """Wait for and handle what the probes sent. Returns the number of events fed."""
        if self._behind:
            timeout_ms = 0                          # bulk records are waiting: no sleep
        self._read(self.poll_ms if timeout_ms is None else timeout_ms, BULK_BUDGET)
        self._behind = self._bulk_left <= 0
        self.behind += self._behind
        self.stats.polls += 1
        n = self._dispatch()
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_interval:
            self._last_sweep = now
            n += self._feed_all(self.aggregates.sweep())
            self.pipeline.end_batch()
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
        agg = self.aggregates
        resolve = self.paths.resolve
        feed = self.pipeline.feed
        after = self._after
        for ev in events:
            cls = type(ev)
            if cls is model.NetSendEvent:
                ev = agg.socket_closed(ev)
                if ev is None:
                    continue
            elif cls is model.ExitEvent:
                fed += self._feed_all(agg.flush_pid(ev.pid))
            elif cls is model.ExecEvent:
                self.stats.exec_latency_ns.append(now_ns - ev.ts_ns)
            feed(resolve(ev))
            fed += 1
            note = after.get(cls)
            if note is not None:
                note(ev)
        self.pipeline.end_batch()
        return fed

    def _feed_all(self, events: list[model.Event]) -> int:
        feed, resolve = self.pipeline.feed, self.paths.resolve
        for ev in events:
            feed(resolve(ev))
        return len(events)

    def drain(self) -> int:
        """Take everything still queued and flush every aggregate (at stop)."""
        self._read(0, 1 << 62)
        n = self._dispatch()
        n += self._feed_all(self.aggregates.sweep(final=True))
        self.pipeline.end_batch()
        return n

    def summary(self) -> dict:
        return {
            "events": dict(self.stats.events),
            "drops": self.probes.drop_counts(),
            "ring_retries": self.probes.ring_retry_counts(),
            "aggregation_maps_full": self.probes.agg_full_counts(),
            "decode_errors": self.stats.decode_errors,
            "polls_behind": self.behind,
            "seconds": round((time.monotonic_ns() - self.stats.started_ns) / 1e9, 3),
        }


def _ts(ev: model.Event) -> int:
    return ev.ts_ns
