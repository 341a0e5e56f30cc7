"""``rules lint``: every error and warning of a set of rule files, none hidden by another.

Errors (the watcher refuses such a set): YAML syntax, duplicate keys, unknown keys, item kinds,
fields, operators, macros, event types, severities or actions; bad values, regexes, CIDRs,
windows; duplicate ids or names; changes to undefined items; macro and list cycles; rules that
can never fire; too many or too long sensitive paths; a newer ``required_engine_version``.

Warnings: unused lists and macros; rules with no ``events``; fields that never have a value for
the rule's event types; file_open rules that do not bound the path; ``!=`` on list-valued
fields; list names compared with ``=``; rules without a false-positive note or an ATT&CK tag;
keys out of the house order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic
from .loader import check_ruleset


@dataclass(frozen=True, slots=True)
class LintReport:
    files: tuple[str, ...]
    rules: int
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "warning"]

    def summary(self) -> str:
        return (f"{len(self.errors)} error(s), {len(self.warnings)} warning(s) in {len(self.files)} "
                f"file(s), {self.rules} enabled rule(s)")

    def to_dict(self) -> dict[str, Any]:
        return {"files": list(self.files), "rules": self.rules, "errors": len(self.errors),
                "warnings": len(self.warnings), "diagnostics": [d.to_dict() for d in self.diagnostics]}


def lint(paths: list[Path] | None = None, replace_bundled: bool = False,
         sigma_paths: list[Path] | None = None) -> LintReport:
    """Check the bundled rules and ``paths`` (or ``paths`` alone), and Sigma rules as
    ``watch --sigma`` loads them; diagnostics in file order, then line order."""
    ruleset = check_ruleset(paths, replace_bundled, sigma_paths)
    order = {name: i for i, name in enumerate(ruleset.files)}
    diags = sorted(ruleset.diagnostics, key=lambda d: (order.get(d.source.path, len(order)), d.source.line))
    return LintReport(tuple(ruleset.files), len(ruleset), tuple(diags))
