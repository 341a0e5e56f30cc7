"""Which action an alert gets: the rule's own override, else the configured default for its
severity (``high`` -> pause, ``critical`` -> kill by default). The actions themselves are
:class:`coi_sentinel.action.Action` (re-exported here with their :data:`STRENGTH`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..action import RESPONSES, STRENGTH, Action
from ..errors import ResponseError
from ..severity import LABELS

SEVERITIES = LABELS     # the one vocabulary, lowest first
DEFAULT_BY_SEVERITY: dict[str, Action] = {
    "info": Action.ALERT, "low": Action.ALERT, "medium": Action.ALERT,
    "high": Action.PAUSE, "critical": Action.KILL,
}


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    by_severity: Mapping[str, Action] = field(default_factory=lambda: dict(DEFAULT_BY_SEVERITY))
    by_rule: Mapping[str, Action] = field(default_factory=dict)   # config overrides per rule id
    allowed: frozenset[Action] = frozenset(RESPONSES)             # what this responder may do

    @classmethod
    def from_config(cls, severity: Mapping[str, str] | None = None, rules: Mapping[str, str] | None = None,
                    allowed: set[Action] | None = None) -> "ActionPolicy":
        by_sev = dict(DEFAULT_BY_SEVERITY)
        for sev, act in (severity or {}).items():
            if sev not in SEVERITIES:
                raise ResponseError(f"unknown severity {sev!r} in the response settings")
            by_sev[sev] = Action.parse(act)
        by_rule = {rid: Action.parse(act) for rid, act in (rules or {}).items()}
        return cls(by_sev, by_rule, frozenset(allowed) if allowed is not None else frozenset(RESPONSES))

    def decide(self, rule: str, severity: str, override: str | None) -> Action:
        """Config per rule > the rule's own action > the severity default; then capped to what
        this responder is allowed to do (a disallowed action becomes ``alert``)."""
        if rule in self.by_rule:
            act = self.by_rule[rule]
        elif override:
            act = Action.parse(override)
        else:
            act = self.by_severity.get(severity, Action.ALERT)
        return act if act in self.allowed else Action.ALERT


__all__ = ["Action", "ActionPolicy", "DEFAULT_BY_SEVERITY", "SEVERITIES", "STRENGTH"]
