"""The C heap of an event loop: keep freed memory for the next batch instead of faulting it in
again.

glibc hands the top of its heap back to the kernel whenever more than 128 KiB lies free there
(``M_TRIM_THRESHOLD``). The event path frees a batch of JSON lines (a few hundred KiB) after
each poll and allocates the next batch's at once, so every batch faulted the same pages in
again: that cost more than encoding the lines (bench/bench_eventpath.py, about 5 us an
event). :func:`keep_freed_memory` keeps up to :data:`TRIM_THRESHOLD` free at the top of the
heap, grows it :data:`TOP_PAD` at a time and serves buffers below :data:`MMAP_THRESHOLD` from
the heap. Memory stays bounded by the largest batch, as before; it is only not returned and
taken back on every poll. Called once per process by the CLI; elsewhere than glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 8 << 20
TOP_PAD = 1 << 20
MMAP_THRESHOLD = 4 << 20


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
