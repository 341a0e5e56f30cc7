"""Events <-> JSON lines. This is the one format of ``watch --json``, traces and audit logs.

A line is a flat JSON object: ``{"type": "exec", "ts_ns": ..., <header fields>, <type fields>}``.
Schema version :data:`SCHEMA_VERSION` (docs/events.md). Lists become tuples on the way back so a
decoded event compares equal to the original.
"""

from __future__ import annotations

import dataclasses

from typing import Any

import orjson

from ..errors import EventDecodeError
from . import model
from .types import EVENT_TYPE_BY_LABEL

SCHEMA_VERSION = 1

_FIELDS = model.FIELD_NAMES
_ARGV_INDEX = _FIELDS[model.ExecEvent].index("argv")
#: fields added after a type's first version carry a default: a line written before them
#: (a trace of an older coi-sentinel) still reads
_DEFAULTS: dict[type, dict[str, Any]] = {
    cls: {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for cls in model.EVENT_CLASSES.values()
}


def to_dict(event: model.Event) -> dict[str, Any]:
    d: dict[str, Any] = {"type": event.type.label}
    for name in _FIELDS[type(event)]:
        d[name] = getattr(event, name)
    return d


def dumps(event: model.Event) -> bytes:
    """One JSON line, without the newline. Bytes that were not UTF-8 in a path or argv (kept
    in the model as surrogate escapes) are written as ``\\xNN`` text."""
    d = to_dict(event)
    try:
        return orjson.dumps(d)
    except TypeError:  # a lone surrogate: orjson refuses it
        return orjson.dumps({k: _escape(v) for k, v in d.items()})


def _escape(v: Any) -> Any:
    if isinstance(v, str):
        try:
            raw = v.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate surrogateescape did not make
            raw = v.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")
    if isinstance(v, (tuple, list)):
        return [_escape(x) for x in v]
    return v


def from_dict(d: dict[str, Any], *, source: str | None = None, line: int | None = None) -> model.Event:
    try:
        label = d["type"]
    except (KeyError, TypeError):
        raise EventDecodeError("event has no \"type\"", source=source, line=line) from None
    etype = EVENT_TYPE_BY_LABEL.get(label)
    if etype is None:
        raise EventDecodeError(f"unknown event type {label!r}", source=source, line=line)
    cls = model.EVENT_CLASSES[etype]
    try:
        values = [d[name] for name in _FIELDS[cls]]
    except KeyError as err:
        defaults = _DEFAULTS[cls]
        if err.args[0] in defaults:
            values = [d[name] if name in d else defaults[name] for name in _FIELDS[cls]]
            if all(name in d or name in defaults for name in _FIELDS[cls]):
                if cls is model.ExecEvent:
                    values[_ARGV_INDEX] = tuple(values[_ARGV_INDEX])
                return cls(*values)
        raise EventDecodeError(f"{label} event lacks field {err.args[0]!r}", source=source, line=line) from None
    if cls is model.ExecEvent:
        values[_ARGV_INDEX] = tuple(values[_ARGV_INDEX])
    return cls(*values)


def loads(line: bytes | str, *, source: str | None = None, lineno: int | None = None) -> model.Event:
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise EventDecodeError(f"not JSON: {err}", source=source, line=lineno) from None
    if not isinstance(d, dict):
        raise EventDecodeError("a JSON event must be an object", source=source, line=lineno)
    return from_dict(d, source=source, line=lineno)
