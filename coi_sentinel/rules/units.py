"""Numbers with units in rule files: durations (``30s``) and sizes (``50MB``)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h)\s*$")
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                "h": 3_600_000_000_000}
_OCTAL = re.compile(r"^0[0-7]+$")
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_SIZE_MULT = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


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
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"'{value}' is not a number")
    return int(m.group(1)) * _SIZE_MULT[m.group(2)]
