"""Events <-> JSON lines. This is the one format of ``watch --json``, traces and audit logs.

A line is a flat JSON object: ``{"type": "exec", "ts_ns": ..., <header fields>, <type fields>}``.
Schema version :data:`SCHEMA_VERSION` (docs/events.md). Lists become tuples on the way back so a
decoded event compares equal to the original.
"""

from __future__ import annotations

import operator
from typing import Any

import orjson

from ..errors import EventDecodeError
from . import model
from .types import EVENT_TYPE_BY_LABEL

SCHEMA_VERSION = 1

_FIELDS = model.FIELD_NAMES
_ARGV_INDEX = _FIELDS[model.ExecEvent].index("argv")
_last: tuple[Any, bytes] = (None, b"")


def _remember(entry: tuple[Any, bytes]) -> None:
    global _last
    _last = entry       # one assignment: a thread reading it sees the old pair or the new one


#: event class -> (label, field names, a getter of their values in order)
_ENCODERS = {cls: (cls.type.label, names, operator.attrgetter(*names)) for cls, names in _FIELDS.items()}
#: label -> (event class, a getter of its fields' values in order: one C call per event)
_DECODERS = {label: (model.EVENT_CLASSES[etype], operator.itemgetter(*_FIELDS[model.EVENT_CLASSES[etype]]))
             for label, etype in EVENT_TYPE_BY_LABEL.items()}


def to_dict(event: model.Event) -> dict[str, Any]:
    label, names, take = _ENCODERS[type(event)]
    d: dict[str, Any] = {"type": label}
    d.update(zip(names, take(event)))
    return d


def dumps(event: model.Event) -> bytes:
    """One JSON line, without the newline. Bytes that were not UTF-8 in a path or argv (kept
    in the model as surrogate escapes) are written as ``\\xNN`` text.

    The last event's line is kept: `watch --json --output` writes each event to stdout and to
    the audit log, and events are frozen, so the second write reuses the first's bytes."""
    last = _last
    if last[0] is event:
        return last[1]
    d = to_dict(event)
    try:
        data = orjson.dumps(d)
    except TypeError:  # a lone surrogate: orjson refuses it
        data = orjson.dumps({k: _escape(v) for k, v in d.items()})
    _remember((event, data))
    return data


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
        cls, take = _DECODERS[d["type"]]
    except (KeyError, TypeError):
        if not isinstance(d, dict) or "type" not in d:
            raise EventDecodeError("event has no \"type\"", source=source, line=line) from None
        raise EventDecodeError(f"unknown event type {d['type']!r}", source=source, line=line) from None
    try:
        values = take(d)
    except KeyError as err:
        raise EventDecodeError(f"{d['type']} event lacks field {err.args[0]!r}", source=source,
                               line=line) from None
    if cls is model.ExecEvent:
        values = list(values)
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
