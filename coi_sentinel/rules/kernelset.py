"""The sensitive path sets the kernel needs, derived from the rules themselves.

The file probe reports every open with write intent, but a *read* only when its path matches
a prefix or a suffix of two sets that user space fills (``sens_prefix``/``sens_suffix`` LPM
tries, 1024 entries each, paths as the caller wrote them). Those sets are computed from the
conditions of the enabled rules that apply to ``file_open``, so a rule and the probe can never
disagree:

- ``file.path startswith X`` gives prefix X; ``file.path endswith X`` gives suffix X;
  ``file.path = X`` / ``in (...)`` gives prefix X (exact paths);
- ``file.name = X`` / ``in`` / ``endswith X`` gives suffix X (this matches "X" given as a
  relative path too);
- a clause that only write opens satisfy (``file.is_write``, ``file.kind = write``) needs
  nothing, nor does a clause whose field has no value on ``file_open``;
- ``A and B`` needs the filter of either side - the more selective bounded one is taken (fewer
  entries, then longer literals); ``A or B`` needs both; ``not ...`` and every other clause
  bound nothing.

A rule for ``file_open`` whose condition is unbounded would need every read of every file:
lint warns that the kernel can only show it write opens and the reads other rules ask for.
"""

from __future__ import annotations

from ..events.types import EventType
from .resolve import FieldRef, TAnd, TBool, TCompare, TConst, TNode, TNot, TOr

Filter = frozenset[tuple[str, str]] | None     # {("prefix"|"suffix", literal)}; None: unbounded

_EMPTY: frozenset[tuple[str, str]] = frozenset()
_ET = EventType.FILE_OPEN


def path_filter(node: TNode) -> Filter:
    """What a ``file_open`` read must match for ``node`` to be able to hold."""
    if isinstance(node, TConst):
        return None if node.value else _EMPTY
    if isinstance(node, TAnd):
        bounded = [f for f in (path_filter(i) for i in node.items) if f is not None]
        if not bounded:
            return None
        return min(bounded, key=_cost)
    if isinstance(node, TOr):
        out: set[tuple[str, str]] = set()
        for item in node.items:
            f = path_filter(item)
            if f is None:
                return None
            out |= f
        return frozenset(out)
    if isinstance(node, TNot):
        inner = node.item
        if isinstance(inner, TConst):
            return None if not inner.value else _EMPTY
        return None
    if isinstance(node, TBool):
        if not node.field.fdef.available(_ET):
            return _EMPTY
        return _EMPTY if node.field.fdef.name == "file.is_write" else None
    return _compare_filter(node)


def _compare_filter(n: TCompare) -> Filter:
    fdef = n.field.fdef
    if not fdef.available(_ET):
        return _EMPTY
    if any(isinstance(v, FieldRef) for v in n.values):
        return None     # val(): no literal
    name, op = fdef.name, n.op
    if name == "evt.type" and op in ("=", "in"):
        return None if _ET.label in n.values else _EMPTY
    if name == "file.kind" and op in ("=", "in"):
        return _EMPTY if "sensitive" not in n.values else None
    if name == "file.is_write" and op == "=":
        return _EMPTY if n.values[0] is True else None
    if name == "file.path":
        if op in ("startswith", "pmatch") or op in ("=", "in"):
            return frozenset(("prefix", str(v)) for v in n.values)
        if op == "endswith":
            return frozenset(("suffix", str(v)) for v in n.values)
    if name == "file.name" and op in ("=", "in", "endswith"):
        return frozenset(("suffix", str(v)) for v in n.values)
    return None


def _cost(f: frozenset[tuple[str, str]]) -> tuple[int, int]:
    return (len(f), -min((len(lit) for _, lit in f), default=10**6))
