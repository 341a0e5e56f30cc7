"""Which action an alert gets: the rule's own override, else the configured default for its
severity (``high`` -> pause, ``critical`` -> kill by default)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import ResponseError
from ..severity import LABELS


class Action(str, enum.Enum):
    ALERT = "alert"                # record only
    PAUSE = "pause"                # freeze the whole container (cgroup2 freezer)
    KILL = "kill"                  # kill the whole container
    KILL_PROCESS = "kill-process"  # kill the offending process and its descendants
    BLOCK = "block"                # add the destination to the session's deny set

    @classmethod
    def parse(cls, text: str) -> "Action":
        try:
            return cls(text)
        except ValueError:
            raise ResponseError(f"unknown action {text!r} (one of: {', '.join(a.value for a in cls)})") from None


SEVERITIES = LABELS     # the one vocabulary, lowest first
DEFAULT_BY_SEVERITY: dict[str, Action] = {
    "info": Action.ALERT, "low": Action.ALERT, "medium": Action.ALERT,
    "high": Action.PAUSE, "critical": Action.KILL,
}
#: how strong an action is: a weaker one never follows a stronger one on the same target
STRENGTH = {Action.ALERT: 0, Action.BLOCK: 1, Action.KILL_PROCESS: 2, Action.PAUSE: 3, Action.KILL: 4}


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    by_severity: Mapping[str, Action] = field(default_factory=lambda: dict(DEFAULT_BY_SEVERITY))
    by_rule: Mapping[str, Action] = field(default_factory=dict)   # config overrides per rule id
    allowed: frozenset[Action] = frozenset(Action)                 # what this responder may do

    @classmethod
    def from_config(cls, severity: Mapping[str, str] | None = None, rules: Mapping[str, str] | None = None,
                    allowed: set[Action] | None = None) -> "ActionPolicy":
        by_sev = dict(DEFAULT_BY_SEVERITY)
        for sev, act in (severity or {}).items():
            if sev not in SEVERITIES:
                raise ResponseError(f"unknown severity {sev!r} in the response settings")
            by_sev[sev] = Action.parse(act)
        by_rule = {rid: Action.parse(act) for rid, act in (rules or {}).items()}
        return cls(by_sev, by_rule, frozenset(allowed) if allowed is not None else frozenset(Action))

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
