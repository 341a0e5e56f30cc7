"""Numbers with units in rule files: durations (``30s``) and sizes (``50MB``)."""

from __future__ import annotations

import re

from ..units import parse_size

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h)\s*$")
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                "h": 3_600_000_000_000}
_OCTAL = re.compile(r"^0[0-7]+$")


def parse_duration(value: object) -> int:
    """``'30s'`` -> nanoseconds. Units: ns, us, ms, s, m, h (a unit is required)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration (write e.g. 500ms, 30s, 5m)")
    m = _DURATION.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a duration (write e.g. 500ms, 30s, 5m)")
    ns = int(float(m.group(1)) * _DURATION_NS[m.group(2)])
    if ns <= 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    return ns


def parse_int(value: object) -> int:
    """An integer: YAML int, decimal/0x/0o/0b text, octal with a leading zero like chmod
    (``04000``), or a size (``50MB`` = 50*10^6, ``4KiB`` = 4096)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a number")
    text = value.strip()
    if _OCTAL.match(text):
        return int(text, 8)
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return parse_size(text)
    except ValueError as err:
        if "say which unit" in str(err):    # 64M: decimal or binary? the message says both
            raise
        raise ValueError(f"'{value}' is not a number") from None
