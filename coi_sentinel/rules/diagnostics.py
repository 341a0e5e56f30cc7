"""Errors and warnings about rule files, each tied to ``path:line``.

Loading never stops at the first problem: every stage adds :class:`Diagnostic` objects to a
:class:`Diagnostics` collector, so ``rules lint`` can print them all. :func:`load_ruleset`
raises one :class:`~coi_sentinel.errors.RuleSetInvalid` at the end when any of them is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import RuleSetInvalid
from .model import Source

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    level: str           # ERROR or WARNING
    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.level}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level, "path": self.source.path, "line": self.source.line,
                "message": self.message}


class Diagnostics:
    """An ordered collection of diagnostics (duplicates dropped)."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()

    def error(self, source: Source, message: str) -> None:
        self.add(Diagnostic(ERROR, source, message))

    def warning(self, source: Source, message: str) -> None:
        self.add(Diagnostic(WARNING, source, message))

    def add(self, diag: Diagnostic) -> None:
        if diag not in self._seen:
            self._seen.add(diag)
            self._items.append(diag)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self._items if d.level == ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self._items if d.level == WARNING]

    def raise_if_errors(self) -> None:
        errors = self.errors
        if not errors:
            return
        first = errors[0]
        more = f" (and {len(errors) - 1} more; run 'coi-sentinel rules lint' for all)" if len(errors) > 1 else ""
        raise RuleSetInvalid(first.source.path, first.source.line, first.message + more,
                             diagnostics=tuple(errors))
