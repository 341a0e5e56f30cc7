"""An output behind its own bounded queue and thread.

:meth:`Output.offer` takes a :class:`Record` (an alert already rendered as our alert record):
it appends it to a bounded deque and wakes the worker thread; a full queue counts the alert as
lost (reason ``queue_full``) instead of waiting. The worker renders the record the way the
output sends it and hands batches to :meth:`Output.deliver`; what a transport finally fails to
deliver after its retries is counted as lost with the reason. Filters (minimum severity, rate
limit per rule: :class:`Filter`) are applied before, where the alert is emitted.

These outputs run in the delivery process (:mod:`coi_sentinel.outputs.worker`), so their
threads never compete with the event loop for the interpreter; an :class:`OutputSet` made with
``process=False`` runs them in its own process instead (tests, tools).

Counters (``queued``, ``delivered``, ``lost``...) are plain ints, each written by one thread.
"""

from __future__ import annotations

import collections
import logging
import struct
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from .. import records
from .spec import OutputSpec

from ..severity import Severity

if TYPE_CHECKING:
    from ..records import AlertRecord
    from ..rules.alert import Alert

log = logging.getLogger(__name__)

#: a frame to the delivery process: payload length, output mask, wall-clock ns (then payload)
FRAME = struct.Struct("<IQq")

#: Falco's JSON alert: our record's keys that it keeps, in Falco's order
FALCO_KEYS = ("time", "rule", "priority", "source", "hostname", "output", "tags", "output_fields")


class Record:
    """An alert as every output receives it: our alert record (``data``), its JSON (``raw``)
    and its wall-clock time in ns since the epoch. ``data`` is decoded from ``raw`` when first
    read: the event loop only sends ``raw`` to the delivery process."""

    __slots__ = ("_data", "raw", "wall_ns")

    def __init__(self, data: dict[str, Any] | None, raw: bytes, wall_ns: int) -> None:
        self._data = data
        self.raw = raw
        self.wall_ns = wall_ns

    @property
    def data(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            self._data = data = orjson.loads(self.raw)
        return data

    @classmethod
    def of(cls, alert: "Alert", wall_offset_ns: int, hostname: str,
           record: "AlertRecord | None" = None) -> "Record":
        """``record``: the alert's record, when the caller made it already (same clock, same
        host)."""
        if record is None:
            record = alert.record(wall_offset_ns=wall_offset_ns, hostname=hostname)
        return cls(None, records.dumps(record), alert.ts_ns + wall_offset_ns)

    @property
    def severity(self) -> Severity:
        return Severity.lookup(self.data.get("severity")) or Severity.HIGH

    def falco(self) -> dict[str, Any]:
        return {k: self.data[k] for k in FALCO_KEYS}



class DeliveryError(Exception):
    """A batch could not be delivered; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class RateLimiter:
    """A token bucket per rule: ``count`` alerts at once, refilled at ``count`` per period."""

    __slots__ = ("count", "per_s", "buckets")

    def __init__(self, count: int, period: float) -> None:
        self.count = float(count)
        self.per_s = count / period
        self.buckets: dict[str, list[float]] = {}

    def allow(self, rule: str, now: float) -> bool:
        b = self.buckets.get(rule)
        if b is None:
            if len(self.buckets) > 10_000:      # bounded: a flood of rule ids cannot grow it
                self.buckets.clear()
            self.buckets[rule] = [self.count - 1.0, now]
            return True
        tokens = min(self.count, b[0] + (now - b[1]) * self.per_s)
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return True
        b[0] = tokens
        return False


class Filter:
    """Minimum severity and per-rule rate limit of one output, applied where alerts are
    emitted (before anything is rendered or sent)."""

    __slots__ = ("min_severity", "limiter", "filtered", "suppressed")

    def __init__(self, spec: OutputSpec) -> None:
        self.min_severity = spec.min_severity
        self.limiter = RateLimiter(spec.rate.count, spec.rate.period) if spec.rate else None
        self.filtered = 0
        self.suppressed = 0

    def passes(self, severity: Severity, rule: str, now: float) -> bool:
        if severity < self.min_severity:
            self.filtered += 1
            return False
        if self.limiter is not None and not self.limiter.allow(rule, now):
            self.suppressed += 1
            return False
        return True


class Output:
    """Base of every output: queue, worker thread, counters. Subclasses implement
    :meth:`deliver` (and may override :meth:`open`, :meth:`shut`)."""

    #: how many alerts one deliver() call takes at most (webhook/OTLP override from options)
    batch_size = 1
    #: tries after the first failure, and the first backoff (doubles, capped at 5 s)
    retries = 0
    backoff = 0.2

    def __init__(self, spec: OutputSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.maxlen = spec.queue
        self._queue: collections.deque[Record] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False
        # the feeding thread's counters
        self.queued = 0
        self.queue_full = 0
        # worker's counters
        self.delivered = 0
        self.failed: Counter[str] = Counter()
        self.retried = 0
        self.last_error: str | None = None

    # ---- feeding side ----
    def offer(self, record: Record) -> bool:
        """Queue a record; never blocks. False (counted lost) when the queue is full."""
        if len(self._queue) >= self.maxlen:
            self.queue_full += 1
            return False
        self._queue.append(record)
        self.queued += 1
        if not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def lost(self) -> int:
        return self.queue_full + sum(self.failed.values())

    def counters(self) -> dict[str, Any]:
        """What this output did (merged with its filter's counts by the OutputSet)."""
        return {"queued": len(self._queue), "accepted": self.queued, "delivered": self.delivered,
                "lost_by_reason": {"queue_full": self.queue_full, **self.failed},
                "retries": self.retried, "busy": self._busy, "last_error": self.last_error}

    # ---- lifecycle ----
    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name=f"coi-output-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """The worker delivers what is queued, then ends (retries no longer wait long)."""
        self._stop.set()
        self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for up to ``timeout`` s; what is left then is counted lost
        (reason ``shutdown``)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("output %s: still delivering after %.1f s; giving up", self.name, timeout)
        left = len(self._queue)
        if left:
            self._queue.clear()
            self.failed["shutdown"] += left
        try:
            self.shut()
        except OSError as err:
            log.warning("output %s: closing: %s", self.name, err)

    def idle(self) -> bool:
        """Nothing queued and nothing being delivered (tests, flush)."""
        return not self._queue and not self._busy

    # ---- worker side ----
    def _run(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            while self._queue:
                batch = self._take()
                self._busy = True
                try:
                    self._deliver_with_retries(batch)
                finally:
                    self._busy = False
            if self._stop.is_set() and not self._queue:
                return

    def _take(self) -> list[Record]:
        out = []
        q = self._queue
        for _ in range(self.batch_size):
            try:
                out.append(q.popleft())
            except IndexError:
                break
        return out

    def _deliver_with_retries(self, batch: list[Record]) -> None:
        try:
            payloads = [self.render(item) for item in batch]
        except Exception as err:  # a rendering bug must be counted, not kill the worker
            self._lose(len(batch), "render", err)
            return
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self.deliver(payloads)
            except DeliveryError as err:
                if not err.retry or attempt == self.retries:
                    self._lose(len(batch), "rejected" if not err.retry else "unreachable", err)
                    return
                self.last_error = str(err)
            except OSError as err:
                if attempt == self.retries:
                    self._lose(len(batch), "unreachable", err)
                    return
                self.last_error = str(err)
                self.reset()
            else:
                self.delivered += len(batch)
                return
            self.retried += 1
            # backoff; a shutdown shortens it (close() has its own deadline)
            if self._stop.wait(delay):
                delay = min(delay, 0.05)
            delay = min(delay * 2, 5.0)

    def _lose(self, n: int, reason: str, err: BaseException) -> None:
        self.failed[reason] += n
        self.last_error = str(err)
        log.warning("output %s: %d alert(s) not delivered (%s): %s", self.name, n, reason, err)

    # ---- for subclasses ----
    def render(self, record: Record) -> Any:
        """An alert as this output sends it (default: JSON bytes, our record or Falco's)."""
        if self.spec.format == "falco":
            return orjson.dumps(record.falco())
        return record.raw

    def open(self) -> None:
        """Called once before the worker starts (connect lazily where possible)."""

    def deliver(self, payloads: list[Any]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """After a failure: drop a broken connection so the next try makes a new one."""

    def shut(self) -> None:
        """Release the transport."""
