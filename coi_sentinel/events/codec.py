"""Events <-> JSON lines. This is the one format of ``watch --json``, traces and audit logs.

A line is a flat JSON object: ``{"type": "exec", "ts_ns": ..., <header fields>, <type fields>}``.
Schema version :data:`SCHEMA_VERSION` (docs/events.md). Lists become tuples on the way back so a
decoded event compares equal to the original.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from ..errors import EventDecodeError
from . import model
from .types import EVENT_TYPE_BY_LABEL

SCHEMA_VERSION = 1

_FIELDS = model.FIELD_NAMES
_ARGV_INDEX = _FIELDS[model.ExecEvent].index("argv")
#: the JSON type each field must have: a trace is input, and a field of the wrong type
#: (``"pid": "abc"``) would otherwise reach the process table and the rules
_JSON_TYPES = {"int": "an integer", "str": "a string", "bool": "true or false",
               "tuple[str, ...]": "a list of strings"}
_TYPES: dict[type, tuple[tuple[str, str], ...]] = {
    cls: tuple((f.name, str(f.type)) for f in fields(cls)) for cls in _FIELDS}


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
        raise EventDecodeError(f"{label} event lacks field {err.args[0]!r}", source=source, line=line) from None
    for (name, kind), value in zip(_TYPES[cls], values):
        t = type(value)
        if not (t is int if kind == "int" else t is str if kind == "str" else t is bool if kind == "bool"
                else (t is list or t is tuple) and all(type(x) is str for x in value)):
            raise EventDecodeError(f"{label} event: field {name!r} must be {_JSON_TYPES[kind]}, "
                                   f"not {_json_type(value)}", source=source, line=line)
    if cls is model.ExecEvent:
        values[_ARGV_INDEX] = tuple(values[_ARGV_INDEX])
    return cls(*values)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def loads(line: bytes | str, *, source: str | None = None, lineno: int | None = None) -> model.Event:
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise EventDecodeError(f"not JSON: {err}", source=source, line=lineno) from None
    if not isinstance(d, dict):
        raise EventDecodeError("a JSON event must be an object", source=source, line=lineno)
    return from_dict(d, source=source, line=lineno)
