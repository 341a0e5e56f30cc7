"""State of the stateful rules - sequences and thresholds - bounded in memory.

Time is the events' own ``ts_ns`` (kernel monotonic clock), never the wall clock, so replay
behaves exactly like live monitoring. Events may arrive slightly out of order (two ring
buffers), so a sequence is matched on timestamps, not on arrival order.

Limits (:class:`Limits`, per rule; the oldest goes first and every eviction is counted):

- a sequence keeps partial matches for at most ``sequence_keys`` keys (process, tree or
  container, plus the ``by`` values) and at most ``sequence_per_step`` events per step and key.
  An event of a step before the last waits for the later steps for the window (plus
  :data:`REORDER_SLACK_NS`); an event of the last step that completed nothing waits only
  :data:`REORDER_SLACK_NS`, for an earlier step that arrives late. Older events expire, and
  :meth:`SequenceState.sweep` (called by the engine once a second of event time) drops keys
  with nothing left. Counted: ``evicted_keys``, ``evicted_events`` (a waiting partial match
  lost) and ``evicted_late`` (a last-step event dropped while it waited);
- a threshold keeps at most ``threshold_groups`` groups; a count keeps no more than
  ``above + 1`` timestamps per group; a sum keeps at most ``threshold_entries`` entries per
  group and beyond that merges the two oldest (the total stays exact; the merged entry leaves
  the window with the later of the two times, so an edge errs towards firing); a count of
  distinct values keeps no more than ``above + 1`` values per group (it fires at ``above + 1``).
"""

from __future__ import annotations

import sys
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

#: how late an event may arrive (by its own timestamp) and still complete a sequence
REORDER_SLACK_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    sequence_keys: int = 4096
    sequence_per_step: int = 16
    threshold_groups: int = 4096
    threshold_entries: int = 4096


class _Entry:
    __slots__ = ("ts", "event", "process")

    def __init__(self, ts: int, event: Any, process: Any) -> None:
        self.ts = ts
        self.event = event
        self.process = process


#: no entry: later than any time
_NEVER = sys.maxsize


class _Bucket:
    __slots__ = ("steps", "newest", "oldest", "oldest_last")

    def __init__(self, nsteps: int) -> None:
        self.steps: list[list[_Entry]] = [[], []] if nsteps == 2 else [[] for _ in range(nsteps)]
        self.newest = 0
        #: no entry of a step before the last is older than this, none of the last step older
        #: than ``oldest_last`` (bounds: an entry removed since may have been the oldest);
        #: a sweep passes a bucket whose bounds are within its limits
        self.oldest = _NEVER
        self.oldest_last = _NEVER

    def empty(self) -> bool:
        return not any(self.steps)


class SequenceState:
    """Partial matches of one sequence rule."""

    def __init__(self, nsteps: int, window_ns: int, limits: Limits) -> None:
        self.nsteps = nsteps
        self.window_ns = window_ns
        self.limits = limits
        self.buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self.evicted_keys = 0
        self.evicted_events = 0     # partial matches lost (an earlier step's event)
        self.evicted_late = 0       # last-step events dropped while waiting for a late earlier step
        self.expired = 0

    def feed(self, steps: list[int], event: Any, process: Any, store_key: Hashable,
             lookup_keys: Sequence[Hashable] = ()) -> list[tuple[Any, Any]] | None:
        """An event matched ``steps`` (ascending). Returns the completed chain [(event, process)...]
        in step order, or None after storing the event as a partial match."""
        if len(steps) > 1:
            steps = sorted(steps, reverse=True)
        ts = event.ts_ns
        entry = _Entry(ts, event, process)
        buckets = self.buckets
        own = buckets.get(store_key)
        chain = None if own is None else self._complete(own, store_key, steps, entry)
        if chain is None and lookup_keys:
            for key in lookup_keys:
                if key != store_key and (bucket := buckets.get(key)) is not None:
                    chain = self._complete(bucket, key, steps, entry)
                    if chain is not None:
                        break
        if chain is not None:
            return chain
        if own is None:
            own = buckets[store_key] = _Bucket(self.nsteps)
            while len(buckets) > self.limits.sequence_keys:
                _, old = buckets.popitem(last=False)
                self.evicted_keys += 1
                self.evicted_events += sum(len(s) for s in old.steps)
        else:
            buckets.move_to_end(store_key)
        last = self.nsteps - 1
        if steps[0] == last and ts < own.oldest_last:      # steps: one, or descending
            own.oldest_last = ts
        if steps[-1] < last and ts < own.oldest:
            own.oldest = ts
        per_step = self.limits.sequence_per_step
        for k in steps:
            held = own.steps[k]
            held.append(entry)
            if len(held) > per_step:
                del held[0]
                if k == last:
                    self.evicted_late += 1
                else:
                    self.evicted_events += 1
        if ts > own.newest:
            own.newest = ts
        return None

    def _complete(self, bucket: _Bucket, key: Hashable, steps: list[int], entry: _Entry
                  ) -> list[tuple[Any, Any]] | None:
        """The chain ``entry`` completes with the events held under ``key``, taken out of it."""
        self._expire(bucket, entry.ts)
        held = bucket.steps
        pair = self.nsteps == 2
        for k in steps:
            # a step other than k has nothing: no chain through k
            if not held[1 - k] if pair else not all(held[j] for j in range(self.nsteps) if j != k):
                continue
            chain = self._chain(bucket, k, entry)
            if chain is not None:
                for j, used in enumerate(chain):
                    if j != k:
                        held[j].remove(used)
                if bucket.empty():
                    del self.buckets[key]
                return [(e.event, e.process) for e in chain]
        return None

    def _expire(self, bucket: _Bucket, ts: int) -> None:
        """Drop expired events. Events are held in arrival order, so only the first is looked
        at; a late-arriving older one goes at the next sweep (a chain is valid or not by its
        timestamps either way: expiry only frees memory). A bucket whose time bounds are within
        the limits has nothing to drop (as in :meth:`sweep`) and is left without a walk."""
        newest = bucket.newest
        if ts > newest:
            bucket.newest = newest = ts
        floor = newest - REORDER_SLACK_NS
        if bucket.oldest_last >= floor and bucket.oldest >= floor - self.window_ns:
            return
        last = self.nsteps - 1
        for j, held in enumerate(bucket.steps):
            if not held:
                continue
            limit = bucket.newest - REORDER_SLACK_NS - (self.window_ns if j < last else 0)
            if held[0].ts < limit:
                keep = [e for e in held if e.ts >= limit]
                self.expired += len(held) - len(keep)
                held[:] = keep

    def sweep(self, now: int) -> None:
        """Expire old events of every key (all of them, not only the first) and drop the keys
        left empty. A key whose time bounds are within the limits has nothing to expire and is
        passed without a walk."""
        last = self.nsteps - 1
        window = self.window_ns
        empty = []
        for key, bucket in self.buckets.items():
            newest = bucket.newest
            if now > newest:
                bucket.newest = newest = now
            if (bucket.oldest_last >= newest - REORDER_SLACK_NS
                    and bucket.oldest >= newest - REORDER_SLACK_NS - window
                    and (bucket.oldest_last != _NEVER or bucket.oldest != _NEVER)):
                continue            # nothing expired, and an entry there: kept as it is
            oldest = oldest_last = _NEVER
            for j, held in enumerate(bucket.steps):
                limit = newest - REORDER_SLACK_NS - (window if j < last else 0)
                keep = [e for e in held if e.ts >= limit]
                if len(keep) != len(held):
                    self.expired += len(held) - len(keep)
                    held[:] = keep
                if keep:
                    t = min([e.ts for e in keep])
                    if j < last:
                        oldest = min(oldest, t)
                    else:
                        oldest_last = t
            bucket.oldest, bucket.oldest_last = oldest, oldest_last
            if oldest == oldest_last == _NEVER:
                empty.append(key)
        for key in empty:
            del self.buckets[key]

    def _chain(self, bucket: _Bucket, k: int, entry: _Entry) -> list[_Entry] | None:
        """The chain through ``entry`` as step ``k`` with the smallest time span, if it fits."""
        chain: list[_Entry | None] = [None] * self.nsteps
        chain[k] = entry
        used = {id(entry.event)}
        hi = entry.ts
        for j in range(k - 1, -1, -1):      # earlier steps: the latest event not after the next
            best = None
            for e in bucket.steps[j]:
                if e.ts <= hi and id(e.event) not in used and (best is None or e.ts > best.ts):
                    best = e
            if best is None:
                return None
            chain[j] = best
            used.add(id(best.event))
            hi = best.ts
        lo = entry.ts
        for j in range(k + 1, self.nsteps):  # later steps: the earliest event not before the previous
            best = None
            for e in bucket.steps[j]:
                if e.ts >= lo and id(e.event) not in used and (best is None or e.ts < best.ts):
                    best = e
            if best is None:
                return None
            chain[j] = best
            used.add(id(best.event))
            lo = best.ts
        first, last = chain[0], chain[-1]
        assert first is not None and last is not None
        if last.ts - first.ts > self.window_ns:
            return None
        return chain  # type: ignore[return-value]

    def stats(self) -> dict[str, int]:
        return {"keys": len(self.buckets), "events": sum(len(s) for b in self.buckets.values() for s in b.steps),
                "evicted_keys": self.evicted_keys, "evicted_events": self.evicted_events,
                "evicted_late": self.evicted_late, "expired": self.expired}

    def approx_bytes(self) -> int:
        total = sys.getsizeof(self.buckets)
        seen: set[int] = set()
        for key, bucket in self.buckets.items():
            total += _size(key) + sys.getsizeof(bucket) + sys.getsizeof(bucket.steps)
            for held in bucket.steps:
                total += sys.getsizeof(held)
                for e in held:
                    total += sys.getsizeof(e)
                    if id(e.event) not in seen:
                        seen.add(id(e.event))
                        total += _size(e.event)
        return total


class _Group:
    __slots__ = ("entries", "total", "count", "newest")

    def __init__(self) -> None:
        self.entries: deque[list[int]] = deque()   # [ts, value, count]
        self.total = 0
        self.count = 0
        self.newest = 0


class _Windowed:
    """The groups of a sliding-window rule, least recently used first, at most
    ``threshold_groups`` of them; each group knows its newest event time."""

    def __init__(self, window_ns: int, above: int, limits: Limits) -> None:
        self.window_ns = window_ns
        self.above = above
        self.limits = limits
        self.groups: OrderedDict[Hashable, Any] = OrderedDict()
        self.evicted_groups = 0

    def _group(self, key: Hashable, ts: int, make: Any) -> Any:
        group = self.groups.get(key)
        if group is None:
            group = make()
            self.groups[key] = group
            while len(self.groups) > self.limits.threshold_groups:
                self.groups.popitem(last=False)
                self.evicted_groups += 1
        else:
            self.groups.move_to_end(key)
        if ts > group.newest:
            group.newest = ts
        return group

    def sweep(self, now: int) -> None:
        """Drop the groups with nothing left in their window."""
        start = now - self.window_ns
        for key in list(self.groups):
            if self.groups[key].newest < start:
                del self.groups[key]


class ThresholdState(_Windowed):
    """Sliding-window totals of one threshold rule, per group."""

    def __init__(self, window_ns: int, above: int, counting: bool, limits: Limits) -> None:
        super().__init__(window_ns, above, limits)
        self.counting = counting
        self.cap = (above + 1) if counting else limits.threshold_entries
        self.coalesced = 0

    def add(self, key: Hashable, ts: int, value: int) -> tuple[int, int] | None:
        """Count ``value`` at ``ts`` for ``key``; returns (total, count) when the total went
        above the limit (the group then starts again from zero)."""
        group = self._group(key, ts, _Group)
        entries = group.entries
        entries.append([ts, value, 1])
        group.total += value
        group.count += 1
        start = group.newest - self.window_ns
        while entries and entries[0][0] < start:
            _, v, n = entries.popleft()
            group.total -= v
            group.count -= n
        if len(entries) > self.cap:
            a = entries.popleft()
            b = entries[0]
            b[1] += a[1]
            b[2] += a[2]
            self.coalesced += 1
        if group.total > self.above:
            fired = (group.total, group.count)
            entries.clear()
            group.total = group.count = 0
            return fired
        return None

    def stats(self) -> dict[str, int]:
        return {"groups": len(self.groups), "entries": sum(len(g.entries) for g in self.groups.values()),
                "evicted_groups": self.evicted_groups, "coalesced": self.coalesced}

    def approx_bytes(self) -> int:
        total = sys.getsizeof(self.groups)
        for key, g in self.groups.items():
            total += _size(key) + sys.getsizeof(g) + sys.getsizeof(g.entries)
            total += sum(sys.getsizeof(e) + 3 * 28 for e in g.entries)
        return total


class _Distinct:
    __slots__ = ("seen", "count", "newest")

    def __init__(self) -> None:
        self.seen: OrderedDict[Hashable, int] = OrderedDict()   # value -> its latest ts
        self.count = 0
        self.newest = 0


class DistinctState(_Windowed):
    """Sliding-window counts of distinct values of one field (a threshold's ``distinct``), per
    group: a value counts until the newest event of its group is later than its own latest
    time plus the window. Fires when more than ``above`` distinct values are in the window
    (the group then starts again from zero); ``count`` is the events added since the start."""

    def add(self, key: Hashable, ts: int, value: Hashable) -> tuple[int, int] | None:
        group = self._group(key, ts, _Distinct)
        seen = group.seen
        if ts >= seen.get(value, ts):
            seen[value] = ts
            seen.move_to_end(value)
        group.count += 1
        start = group.newest - self.window_ns
        while seen:
            first = next(iter(seen))
            if seen[first] >= start:
                break
            del seen[first]
        if len(seen) > self.above:
            fired = (len(seen), group.count)
            seen.clear()
            group.count = 0
            return fired
        return None

    def stats(self) -> dict[str, int]:
        return {"groups": len(self.groups), "entries": sum(len(g.seen) for g in self.groups.values()),
                "evicted_groups": self.evicted_groups, "coalesced": 0}

    def approx_bytes(self) -> int:
        total = sys.getsizeof(self.groups)
        for key, g in self.groups.items():
            total += _size(key) + sys.getsizeof(g) + sys.getsizeof(g.seen)
            total += sum(sys.getsizeof(v) + 28 for v in g.seen)
        return total


def _size(obj: Any) -> int:
    """Shallow size plus the size of tuple members or slotted attributes (one level)."""
    total = sys.getsizeof(obj)
    if isinstance(obj, tuple):
        total += sum(sys.getsizeof(x) for x in obj)
    else:
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                total += sys.getsizeof(getattr(obj, name, None))
    return total
