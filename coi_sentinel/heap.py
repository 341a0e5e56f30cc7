"""The heap of an event loop: keep freed memory for the next batch instead of faulting it in
again, and keep Python's collector off what set-up built.

glibc hands the top of its heap back to the kernel whenever more than 128 KiB lies free there
(``M_TRIM_THRESHOLD``). The event path frees a batch of JSON lines (a few hundred KiB) after
each poll and allocates the next batch's at once, so every batch faulted the same pages in
again: that cost more than encoding the lines (bench/bench_eventpath.py, about 5 us an
event). :func:`keep_freed_memory` keeps up to :data:`TRIM_THRESHOLD` free at the top of the
heap, grows it :data:`TOP_PAD` at a time and serves buffers below :data:`MMAP_THRESHOLD` from
the heap. Memory stays bounded by the largest batch, as before; it is only not returned and
taken back on every poll. Called once per process by the CLI; elsewhere than glibc it does
nothing.

Python's cyclic collector runs a young collection every 700 allocations of container objects
and, every tenth and hundredth of those, walks older generations: the rules, their compiled
code, the process table and the rules' state, which live as long as the loop. An event makes
a few short-lived containers (the event, tuples, a list of hits), so the collector ran every
~150 events and cost about 6 % of the instructions of the event path (bench/bench_instructions.py,
``gc.disable()`` against the defaults). :func:`collect_young_less` (once, by the CLI) lets
:data:`YOUNG_THRESHOLD` allocations pass between young collections; :func:`settle` (where a
long loop starts: live monitoring, replay) collects what set-up left, then freezes the rest
(``gc.freeze()``: the collector no longer walks it; it is still freed by reference counts).
Nothing is collected less, only less often and not the set-up. The threshold is a compromise
measured in time, not instructions: 50,000 ran the fewest instructions, but its young
generation (megabytes) no longer stays in the CPU's caches, and bench_outputs.py ran slower
with it than with the default; 5,000 kept replay's gain (bench_replay.py) without that loss.
"""

from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 8 << 20
TOP_PAD = 1 << 20
MMAP_THRESHOLD = 4 << 20

#: container allocations between two young collections (CPython's default: 700)
YOUNG_THRESHOLD = 5_000


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as the module doc says. Returns False where it cannot (no glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.debug("no mallopt(3) in this process: the C heap is left as it is")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD), (M_MMAP_THRESHOLD, MMAP_THRESHOLD)))
    if not ok:
        log.debug("mallopt(3) refused a setting: the C heap is left partly as it was")
    return ok


def collect_young_less() -> None:
    """Young collections every :data:`YOUNG_THRESHOLD` allocations (older ones as before)."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def settle() -> None:
    """Where a long loop starts: collect what set-up left as garbage, then freeze what is left
    (it lives as long as the loop), so that no collection walks it again. Called again after
    frozen objects died (the daemon's old rules after a reload): what was frozen is unfrozen
    first, so cycles among them are collected then."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
