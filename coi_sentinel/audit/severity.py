"""Alert severities in order, for the flight recorder's trigger and ``audit show --severity``.

Rules may use Sigma's levels (informational, low, medium, high, critical) or Falco's priorities
(debug ... emergency); both map onto one scale. An unknown or missing severity ranks as high:
when in doubt, the pre-trigger events are kept.
"""

from __future__ import annotations

import enum
from typing import Any

RANKS: dict[str, int] = {
    "debug": 0,
    "informational": 1, "info": 1,
    "low": 2, "notice": 2,
    "medium": 3, "warning": 3,
    "high": 4, "error": 4,
    "critical": 5, "alert": 5, "emergency": 5,
}
HIGH = RANKS["high"]

#: names accepted on the command line, lowest first: Sigma's levels and Falco's priorities
LEVELS = ("debug", "informational", "info", "low", "notice", "medium", "warning", "high", "error",
          "critical", "alert", "emergency")


def rank(severity: Any) -> int:
    """The rank of a severity name (any case) or enum member (by its name); anything else,
    bare numbers included (whose scale is unknown), ranks as :data:`HIGH`."""
    if isinstance(severity, enum.Enum):
        severity = severity.name
    if isinstance(severity, str):
        return RANKS.get(severity.strip().lower(), HIGH)
    return HIGH


def of_alert(alert: dict[str, Any]) -> Any:
    """An alert's severity field (``severity``, or Falco's ``priority``)."""
    return alert.get("severity", alert.get("priority"))
