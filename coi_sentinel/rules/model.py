"""The items of a rule file - rule, list, macro - as frozen, slotted dataclasses.

Every item knows where it was written (:class:`Source`, printed ``path:line``); so does every
piece of condition text (:class:`CondText`), because a condition may be the bundled text plus
clauses appended from a user's file, and an error must point at the file that wrote the clause.
These are plain data: parsing the conditions and compiling them happens in
:mod:`~coi_sentinel.rules.resolve` and :mod:`~coi_sentinel.rules.compiler`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..action import NAMES as ACTION_NAMES
from ..events.types import EventType
from ..severity import LABELS, Severity

#: version of the rule language this engine implements (``required_engine_version``)
ENGINE_VERSION = (1, 0, 0)

#: response actions a rule may ask for (coi_sentinel.action; the respond layer acts on them)
ACTIONS = ACTION_NAMES

#: how a stateful sequence relates the processes of its steps
SCOPES = ("process", "tree", "container")


@dataclass(frozen=True, slots=True)
class Source:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


#: the one severity vocabulary (coi_sentinel.severity), re-exported for rule code
SEVERITY_LABELS = LABELS


@dataclass(frozen=True, slots=True)
class CondText:
    """A piece of condition text and where it was written.

    The first piece of a condition stands alone; each later piece was appended by another item
    and starts with ``and`` or ``or`` - it continues the parenthesised condition before it.
    """

    text: str
    source: Source
    #: the text as it stands in the file (folded, quoted...) and the line it starts on, to map
    #: a position in ``text`` back to a line of the file
    raw: str = ""
    raw_line: int = 0

    def line_at(self, pos: int, token: str) -> int:
        """Line of the file holding ``token``, found at ``pos`` in ``text``."""
        if not self.raw or not token:
            return self.source.line
        nth = self.text.count(token, 0, pos)
        idx = -1
        for _ in range(nth + 1):
            idx = self.raw.find(token, idx + 1)
            if idx < 0:
                return self.source.line
        return self.raw_line + self.raw.count("\n", 0, idx)

    def source_at(self, pos: int, token: str) -> Source:
        return Source(self.source.path, self.line_at(pos, token))


@dataclass(frozen=True, slots=True)
class ListDef:
    name: str
    items: tuple[str | int, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class MacroDef:
    name: str
    condition: tuple[CondText, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class ExceptionDef:
    """Named tuples of field values that silence a rule: ``fields[i] comps[i] row[i]`` for
    every i holds -> the event is an exception. Rows may come from several files.

    With one field, each entry of ``values`` is that field's value (a tuple for ``in``); with
    several, each entry is a tuple with one value per field.
    """

    name: str
    fields: tuple[str, ...]
    comps: tuple[str, ...]
    values: tuple[object, ...]
    source: Source

    def rows(self) -> list[tuple[object, ...] | None]:
        """Entries of ``values`` as one value per field; None for a malformed entry."""
        out: list[tuple[object, ...] | None] = []
        for entry in self.values:
            if len(self.fields) == 1:
                multi = self.comps[0] not in ("=", "!=", "<", "<=", ">", ">=")
                if isinstance(entry, tuple) and not multi:
                    out.append(entry if len(entry) == 1 else None)
                else:
                    out.append((entry,))
            else:
                ok = isinstance(entry, tuple) and len(entry) == len(self.fields)
                out.append(entry if ok else None)
        return out


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    events: tuple[EventType, ...]
    condition: tuple[CondText, ...]
    by: tuple[str, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class Sequence:
    """Ordered steps whose events fall within ``window_ns`` of each other (by event time)."""

    scope: str
    window_ns: int
    steps: tuple[Step, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class Threshold:
    """Count (``sum_field`` and ``distinct_field`` None), sum of a field, or number of distinct
    values of a field, over a sliding window, grouped by ``by``; fires when the total goes
    above ``above``."""

    by: tuple[str, ...]
    window_ns: int
    sum_field: str | None
    above: int
    source: Source
    distinct_field: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: Severity
    events: tuple[EventType, ...]   # empty: every event type (lint warns)
    condition: tuple[CondText, ...]  # empty for a sequence (its steps have conditions)
    output: str
    tags: tuple[str, ...]
    action: str | None
    exceptions: tuple[ExceptionDef, ...]
    false_positives: str
    enabled: bool
    source: Source
    output_source: Source
    sequence: Sequence | None = None
    threshold: Threshold | None = None
    #: a human name: a Falco rule name (the id is derived from it) or a Sigma title
    title: str = ""
    references: tuple[str, ...] = ()
    #: the id of the Sigma rule this one was converted from
    sigma_id: str = ""
    #: "falco" for an item written in Falco's style (desc, priority, a name with spaces)
    dialect: str = ""

    @property
    def kind(self) -> str:
        if self.sequence is not None:
            return "sequence"
        if self.threshold is not None:
            return "threshold"
        return "event"
