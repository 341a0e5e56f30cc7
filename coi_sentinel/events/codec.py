"""Events <-> JSON lines. This is the one format of ``watch --json``, traces and audit logs.

A line is a flat JSON object: ``{"type": "exec", "ts_ns": ..., <header fields>, <type fields>}``.
Schema version :data:`SCHEMA_VERSION` (docs/events.md). Lists become tuples on the way back so a
decoded event compares equal to the original.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import fields
from typing import Any, BinaryIO, Iterable

import orjson

from ..errors import EventDecodeError
from . import model
from .types import EVENT_TYPE_BY_LABEL

SCHEMA_VERSION = 1

_FIELDS = model.FIELD_NAMES
#: the list fields of an exec event (argv, env): tuples once decoded
_EXEC_LISTS = tuple(_FIELDS[model.ExecEvent].index(n) for n in ("argv", "env"))
_last: tuple[Any, bytes] = (None, b"")




def _dict_maker(cls: type) -> Any:
    """``event -> {"type": label, field: value...}`` for one class, as one dict display (twice
    as fast as filling a dict from the field names). The names are our own dataclass fields."""
    names = _FIELDS[cls]
    assert all(n.isidentifier() for n in names)
    src = (f"def to_dict_{cls.type.label}(e):\n    return {{'type': {cls.type.label!r}, "
           + ", ".join(f"{n!r}: e.{n}" for n in names) + "}\n")
    ns: dict[str, Any] = {}
    exec(compile(src, f"<codec:{cls.type.label}>", "exec"), ns)  # noqa: S102 - our own field names
    return ns[f"to_dict_{cls.type.label}"]


#: event class -> its dict maker
_ENCODERS = {cls: _dict_maker(cls) for cls in _FIELDS}
#: label -> (event class, a getter of its fields' values in order: one C call per event)
_DECODERS = {label: (model.EVENT_CLASSES[etype], operator.itemgetter(*_FIELDS[model.EVENT_CLASSES[etype]]))
             for label, etype in EVENT_TYPE_BY_LABEL.items()}
#: fields added after a type's first version carry a default: a line written before them
#: (a trace of an older coi-sentinel) still reads
_DEFAULTS: dict[type, dict[str, Any]] = {
    cls: {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for cls in model.EVENT_CLASSES.values()
}


#: the JSON type each field must have: a trace is input, and a field of the wrong type
#: (``"pid": "abc"``) would otherwise reach the process table and the rules
_JSON_TYPES = {"int": "an integer", "str": "a string", "bool": "true or false",
               "tuple[str, ...]": "a list of strings"}
_KINDS: dict[type, tuple[tuple[str, str], ...]] = {
    cls: tuple((f.name, str(f.type)) for f in fields(cls)) for cls in _FIELDS}
_PY = {"int": int, "str": str, "bool": bool, "tuple[str, ...]": list}
#: class -> the Python types of its fields as JSON decodes them (checked with one comparison)
_SHAPES = {cls: tuple(_PY[kind] for _name, kind in kinds) for cls, kinds in _KINDS.items()}


def orjson_keys(names: Iterable[str]) -> dict[str, str]:
    """name -> the str object orjson makes for that key. orjson keeps the key strings of
    what it decodes in a cache and returns the same object each time; a getter holding those
    objects finds each key in a decoded dict by identity, without comparing characters (a
    third of a line's field getter, issue 18). Should the cache drop one, the keys are still
    equal: only slower."""
    return {k: k for k in orjson.loads(orjson.dumps(dict.fromkeys(names, 0)))}


def _fast_decoder(cls: type) -> Any:
    """``dict -> event`` for one class in one call: its fields taken with one C call (with the
    defaults of fields added since a type's first version, for a line written before them),
    each checked to have exactly the type the class declares (exec's lists: lists or tuples of
    strings, made tuples), the event made without a call of its ``__init__`` (which only stores the
    same values, behind a call through the class). ``None`` when a field has another type
    (:func:`from_dict` then says which, or accepts it); a field missing with no default raises
    ``KeyError`` (:func:`from_dict` names it). The names are our own dataclass fields."""
    names = _FIELDS[cls]
    assert all(n.isidentifier() and not n.startswith("_") and n not in ("d", "e") for n in names)
    label = cls.type.label
    check = " and ".join(f"_type({n}) in _seqs and _strs(map(_type, {n}))" if kind == "tuple[str, ...]"
                         else f"_type({n}) is _{kind}" for n, kind in _KINDS[cls])
    values = ", ".join(f"_tuple({n})" if kind == "tuple[str, ...]" else n for n, kind in _KINDS[cls])
    if hasattr(cls, "__post_init__") or not all(f.init for f in fields(cls)):
        make = f"        return _cls({values})\n"      # __init__ does more than store
    else:
        make = ("        e = _new(_cls)\n"
                + "".join(f"        e.{n} = {v}\n" for n, v in zip(names, values.split(", ")))
                + "        return e\n")
    take = f"{', '.join(names)}, = _take(d)"
    if _DEFAULTS[cls]:      # a line of an older schema: the defaults under it (as from_dict)
        take = (f"try:\n        {take}\n    except KeyError:\n"
                f"        {', '.join(names)}, = _take({{**_defaults, **d}})")
    src = (f"def decode_{label}(d):\n"
           f"    {take}\n"
           f"    if {check}:\n{make}"
           "    return None\n")
    keys = orjson_keys(names)
    ns: dict[str, Any] = {"_take": operator.itemgetter(*[keys[n] for n in names]), "_type": type, "_int": int,
                          "_str": str, "_bool": bool, "_seqs": (list, tuple), "_tuple": tuple,
                          "_strs": frozenset((str,)).issuperset, "_new": object.__new__,
                          "_cls": cls, "_defaults": _DEFAULTS[cls]}
    exec(compile(src, f"<codec:decode_{label}>", "exec"), ns)  # noqa: S102 - our own field names
    return ns[f"decode_{label}"]


#: label -> a decoder: ``decoder(d)`` is the event, None when a field has another type,
#: KeyError when one without a default is missing; what a hot loop may call, handing the
#: others to :func:`from_dict`, which says what is wrong (or accepts an argv tuple)
FAST_DECODERS = {label: _fast_decoder(cls) for label, (cls, _take) in _DECODERS.items()}


def _check_types(cls: type, label: str, values: tuple, source: str | None, line: int | None) -> None:
    """The slow path, when the shape differs: accept what is right after all (an argv tuple
    from :func:`to_dict`), else name the first field of the wrong type."""
    for (name, kind), value in zip(_KINDS[cls], values):
        t = type(value)
        if not (t is int if kind == "int" else t is str if kind == "str" else t is bool if kind == "bool"
                else (t is list or t is tuple) and all(type(x) is str for x in value)):
            raise EventDecodeError(f"{label} event: field {name!r} must be {_JSON_TYPES[kind]}, "
                                   f"not {_json_type(value)}", source=source, line=line)


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


def to_dict(event: model.Event) -> dict[str, Any]:
    return _ENCODERS[type(event)](event)


def dumps(event: model.Event) -> bytes:
    """One JSON line, without the newline. Bytes that were not UTF-8 in a path or argv (kept
    in the model as surrogate escapes) are written as ``\\xNN`` text.

    The last event's line is kept: `watch --json --output` writes each event to stdout and to
    the audit log, and events are frozen, so the second write reuses the first's bytes."""
    global _last
    last = _last
    if last[0] is event:
        return last[1]
    d = _ENCODERS[type(event)](event)
    try:
        data = _orjson_dumps(d)
    except TypeError:  # a lone surrogate: orjson refuses it
        data = orjson.dumps({k: _escape(v) for k, v in d.items()})
    _last = (event, data)   # one assignment: a thread reading it sees the old pair or the new one
    return data


_orjson_dumps = orjson.dumps


class JsonLines:
    """A pipeline sink printing every event as a JSON line (``watch --json``) on a binary
    stream. The lines of a batch are written together at :meth:`end_batch` (the pipeline's
    end of batch); a line given to :meth:`write_line` (an alert, an action) goes out at once,
    after the events before it, so the order on the stream is the order of handling."""

    def __init__(self, stream: BinaryIO) -> None:
        self._out = stream
        self._lines: list[bytes] = []

    def __call__(self, event: model.Event, process: object = None) -> None:
        last = _last        # dumps()'s last line, inline: the audit log encoded this event first
        self._lines.append(last[1] if last[0] is event else dumps(event))

    def write_line(self, line: bytes) -> None:
        """One line (without its newline) now, after the events still waiting."""
        self._lines.append(line)
        self.end_batch()

    def end_batch(self) -> None:
        lines = self._lines
        if lines:
            lines.append(b"")
            self._out.write(b"\n".join(lines))
            lines.clear()
            self._out.flush()

    def close(self) -> None:
        self.end_batch()


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
        defaults = _DEFAULTS[cls]
        if err.args[0] in defaults:
            try:
                values = take({**defaults, **d})
            except KeyError:
                pass        # a field without a default is missing too: named as below
            else:
                if cls is model.ExecEvent:
                    values = list(values)
                    for i in _EXEC_LISTS:
                        values[i] = tuple(values[i])
                return cls(*values)
        raise EventDecodeError(f"{d['type']} event lacks field {err.args[0]!r}", source=source,
                               line=line) from None
    if tuple(map(type, values)) != _SHAPES[cls]:
        _check_types(cls, d["type"], values, source, line)
    if cls is model.ExecEvent:
        values = list(values)
        for i in _EXEC_LISTS:
            strings = values[i]
            if not all(type(x) is str for x in strings):
                _check_types(cls, d["type"], tuple(values), source, line)
            values[i] = tuple(strings)
    return cls(*values)


def loads(line: bytes | str, *, source: str | None = None, lineno: int | None = None) -> model.Event:
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise EventDecodeError(f"not JSON: {err}", source=source, line=lineno) from None
    if not isinstance(d, dict):
        raise EventDecodeError("a JSON event must be an object", source=source, line=lineno)
    return from_dict(d, source=source, line=lineno)
