"""How an audit log is written: batching, rotation, retention, and the flight recorder's bounds.

Sizes and durations may be given as text, as in a session profile or on the command line:
``"64MiB"``, ``"1GiB"``, ``"50MB"`` (one size grammar, :mod:`coi_sentinel.units`), ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..units import parse_size

_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: float | int | str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"``, ``"2w"``."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value, re.IGNORECASE)
    if m is None:
        raise ValueError(f"not a duration: {value!r} (examples: 90s, 15m, 12h, 30d)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    #: a batch is written and fsync'd when this many lines wait ... (alerts and actions are
    #: fsync'd on their own; at 100k events/s this is 41 ms of events, and a batch's fsync
    #: costs CPU whatever its size: bench/bench_eventpath.py)
    batch_records: int = 4096
    #: ... or the oldest has waited this long (seconds); bounds what a crash loses
    batch_seconds: float = 1.0
    fsync: bool = True
    #: rotate when the active file reaches this size (bytes); None: never
    max_bytes: int | None = 64 << 20
    #: rotate when the active file is this old (seconds); None: never
    max_age: float | None = 86400.0
    #: remove rotated files last written longer ago than this (seconds); None: keep all
    retention: float | None = 30 * 86400.0
    #: while the disk is full, keep at most this much in memory; count the rest as lost
    max_pending_bytes: int = 64 << 20
    #: while the disk is full, retry writing this often (seconds)
    retry_seconds: float = 1.0
    #: flight recorder: keep this many seconds ...
    context_seconds: float = 30.0
    #: ... and at most this many events per scope ...
    context_events: int = 2000
    #: ... for at most this many scopes
    context_scopes: int = 256
    #: alerts at or above this severity write the flight recorder's events as context
    context_severity: str = "high"

    def __post_init__(self) -> None:
        if self.batch_records < 1 or self.batch_seconds < 0:
            raise ValueError("batch_records must be >= 1 and batch_seconds >= 0")
        if self.max_bytes is not None and self.max_bytes < 4096:
            raise ValueError("max_bytes must be at least 4096")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "AuditPolicy":
        """From a session profile's ``audit:`` mapping; sizes and durations may be text."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown audit settings: {', '.join(unknown)}")
        kw: dict[str, Any] = {}
        for key, value in values.items():
            if value is None or key in ("fsync", "context_severity"):
                kw[key] = value
            elif key in ("max_bytes", "max_pending_bytes"):
                kw[key] = parse_size(value)
            elif key in ("batch_seconds", "max_age", "retention", "retry_seconds", "context_seconds"):
                kw[key] = parse_duration(value)
            else:
                kw[key] = int(value)
        return cls(**kw)
