"""Output templates: ``"... %proc.name ... %net.dip:%net.dport"``.

``%FIELD`` is replaced by the field's value for the matched event (``<NA>`` when it has none),
``%%`` by ``%``; a ``%`` not followed by a field name stays as it is. Threshold rules may also
use ``%threshold.value``, ``%threshold.count`` and ``%threshold.window``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .diagnostics import Diagnostics
from .falco import field_def, unsupported_field
from .fields import FIELDS, THRESHOLD_OUTPUT_FIELDS, split_ref
from .model import Source
from .parser import suggest
from .resolve import FieldUse

_REF = re.compile(r"%%|%([a-z_]+(?:\.[a-z_0-9]+)+(?:\[\d+\])?)")
NA = "<NA>"


@dataclass(frozen=True, slots=True)
class Pseudo:
    """A value only the rule's state knows (``threshold.value``...)."""

    name: str


Part = str | FieldUse | Pseudo


@dataclass(frozen=True, slots=True)
class OutputTemplate:
    text: str
    parts: tuple[Part, ...]

    @property
    def fields(self) -> tuple[FieldUse, ...]:
        return tuple(p for p in self.parts if isinstance(p, FieldUse))

    def render(self, value_of: Callable[[FieldUse], Any], pseudo: dict[str, Any] | None = None) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Pseudo):
                out.append(format_value((pseudo or {}).get(part.name)))
            else:
                out.append(format_value(value_of(part)))
        return "".join(out)


    def render_fields(self, value_of: Callable[[FieldUse], Any],
                      pseudo: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """The text, and every field the template names -> its typed value (a tuple as a list;
        None where the event has no value), as Falco's ``output_fields``."""
        out: list[str] = []
        fields: dict[str, Any] = {}
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            if isinstance(part, Pseudo):
                name, value = part.name, (pseudo or {}).get(part.name)
            else:
                name, value = part.name, value_of(part)
            out.append(format_value(value))
            fields[name] = _typed(value)
        return "".join(out), fields


def _typed(value: Any) -> Any:
    """A field value as JSON holds it: str, int, bool, None, or a list of those."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, tuple):
        return [_typed(v) for v in value]
    return str(value)


def format_value(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    return str(value)


def parse_output(text: str, source: Source, diags: Diagnostics, *, threshold: bool) -> OutputTemplate:
    parts: list[Part] = []
    pos = 0
    for m in _REF.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        pos = m.end()
        if m.group(0) == "%%":
            parts.append("%")
            continue
        name = m.group(1)
        if name in THRESHOLD_OUTPUT_FIELDS:
            if not threshold:
                diags.error(source, f"output uses %{name} but the rule has no threshold")
            parts.append(Pseudo(name))
            continue
        ref = split_ref(name)
        fdef = field_def(ref[0]) if ref is not None else None
        advice = unsupported_field(name) if fdef is None else None
        if advice is not None:
            diags.warning(source, f"output field '%{name}' is not supported ({advice}): it prints {NA}")
            parts.append(NA)
            continue
        if ref is None or fdef is None:
            base = name.split("[", 1)[0]
            diags.error(source, f"unknown field '%{name}' in output{suggest(base, FIELDS)}")
            continue
        index = ref[1]
        if (index is not None and fdef.indexed == "no") or (index is None and fdef.indexed == "required"):
            problem = "takes no index" if index is not None else "needs an index"
            diags.error(source, f"field '{ref[0]}' in output {problem}")
            continue
        parts.append(FieldUse(fdef, index))
    if pos < len(text):
        parts.append(text[pos:])
    return OutputTemplate(text, tuple(parts))
