"""One grammar for sizes, wherever a size is written (rule files, audit settings, profiles).

A size is a whole number of bytes, optionally followed by a unit that says which base it uses:
``B``; decimal ``KB`` ``MB`` ``GB`` ``TB`` (powers of 1000); binary ``KiB`` ``MiB`` ``GiB``
``TiB`` (powers of 1024). A bare letter (``64M``, ``512k``) is refused, with a message naming
both readings: the base is always written out.
"""

from __future__ import annotations

import re

SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)?\s*$")


def parse_size(value: object) -> int:
    """Bytes from ``4096``, ``"50MB"`` (50*10^6) or ``"64MiB"`` (64*2^20)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is not a size (negative)")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size")
    m = _SIZE.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a size (write e.g. 4096, 50MB, 64MiB)")
    number, unit = int(m.group(1)), m.group(2)
    if unit is None:
        return number
    mult = SIZE_UNITS.get(unit)
    if mult is None:
        letter = unit[:1].upper()
        if letter in "KMGT" and unit.lower() in (letter.lower(), letter.lower() + "b", letter.lower() + "ib"):
            raise ValueError(f"{value!r}: say which unit: {number}{letter}B = {number}*10^"
                             f"{3 * ('KMGT'.index(letter) + 1)} or {number}{letter}iB = {number}*2^"
                             f"{10 * ('KMGT'.index(letter) + 1)} (units are case-sensitive)")
        raise ValueError(f"{value!r}: unknown unit {unit!r} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    return number * mult
