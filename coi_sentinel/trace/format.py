"""The trace format: what a trace file's lines are (docs/traces.md).

A trace is NDJSON, gzip-compressed when its name ends in ``.gz``. Line 1 is a header record;
every other line is either an event exactly as :func:`coi_sentinel.events.codec.dumps` prints it
(it has a ``"type"`` key) or a record (it has a ``"record"`` key: alerts, actions, drops, ...).
Keys starting with ``_`` are added by writers for their own bookkeeping (the audit log's hash
chain: ``_n``, ``_h``) and are ignored by readers, so an audit log replays as a trace.
"""

from __future__ import annotations

import datetime
import os
import platform
import socket
import time
from typing import Any

from ..events.codec import SCHEMA_VERSION

#: the header's ``"kind"``: a file whose first line does not say this is not ours
KIND = "coi-sentinel-trace"

#: version of the line format (header, records and event fields); the events' schema
SCHEMA = SCHEMA_VERSION

#: record kinds written by coi-sentinel. Readers pass unknown kinds through (newer writers may
#: add some); unknown *event types* are errors, since replay could not evaluate them.
RECORD_KINDS = frozenset({
    "header",     # first line of a file (and of each file concatenated into an export)
    "footer",     # last line of a file that was closed cleanly
    "alert",      # a rule fired
    "action",     # a response was taken (kill, pause, block)
    "drops",      # events lost (kernel ring buffers, writer backlog)
    "coverage",   # probe coverage at start or when it changed
    "monitor",    # monitor start, stop, restart, retention, disk-full recovery
    "context",    # the flight recorder's pre-trigger events of one scope follow
})

#: reasons a line (or file) is rejected; lenient reading counts skipped lines by these
READ_ERRORS = {
    "truncated": "the file ends in the middle of a line",
    "long": "a line is longer than a trace line can be",
    "json": "a line is not a JSON object",
    "event": "an event line has an unknown type or lacks fields",
    "record": "a line is neither an event nor a record",
    "schema": "the header's schema version is not the one this program reads",
    "header": "the file does not start with a header",
    "foreign": "the file is not a coi-sentinel trace",
    "gzip": "the gzip stream is corrupt",
    "io": "the file cannot be opened or read",
}

#: gzip's magic number: readers detect compression by content, writers choose it by name
GZIP_MAGIC = b"\x1f\x8b"


def is_gzip_name(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).endswith(".gz")


def iso_time(t: float | None = None) -> str:
    """UTC wall-clock time, ISO 8601 with milliseconds: ``2024-05-01T12:00:00.123Z``."""
    dt = datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso_time(text: str) -> float:
    """Inverse of :func:`iso_time` (also accepts offsets and no fraction); seconds since epoch."""
    dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def boot_id() -> str | None:
    """The kernel's boot id: events' ``ts_ns`` (CLOCK_MONOTONIC) only compare within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def make_header(source: str, *, kernel: str | None = None, coverage: dict | None = None,
                drops: dict | None = None, **extra: Any) -> dict[str, Any]:
    """A header record for a new trace.

    ``source`` says what wrote it (``"watch"``, ``"record"``, ``"run"``...). ``start_ns`` is
    CLOCK_MONOTONIC, the clock of the events' ``ts_ns``, and ``start_time`` the wall clock at
    the same moment, so ``ts_ns`` can be shown as a date. ``extra`` keys are added as given
    (``command``, ``scope``, ``session``...).
    """
    start_ns = time.monotonic_ns()
    header: dict[str, Any] = {
        "record": "header",
        "schema": SCHEMA,
        "kind": KIND,
        "source": source,
        "kernel": kernel if kernel is not None else platform.release(),
        "hostname": socket.gethostname(),
        "boot_id": boot_id(),
        "start_ns": start_ns,
        "start_time": iso_time(),
        "coverage": coverage if coverage is not None else {},
        "drops": drops if drops is not None else {},
    }
    header.update(extra)
    return header
