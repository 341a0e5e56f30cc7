"""Alert severities ranked, for the flight recorder's trigger and ``audit show --severity``.

The scale is :class:`coi_sentinel.severity.Severity`, the one vocabulary of the project; an
alert record may carry ours, Sigma's (``informational``) or Falco's priority names (``debug`` ...
``emergency``), all read onto it. An unknown or missing severity ranks as high: when in doubt,
the pre-trigger events are kept.
"""

from __future__ import annotations

from typing import Any

from ..severity import Severity

HIGH = int(Severity.HIGH)

#: names accepted on the command line, lowest first: ours, Sigma's levels and Falco's
#: priorities (every one of them a name of coi_sentinel.severity.ALIASES)
LEVELS = ("debug", "informational", "info", "low", "notice", "medium", "warning", "high", "error",
          "critical", "alert", "emergency")


def rank(severity: Any) -> int:
    """The rank of a severity name (any case) or enum member (by its name); anything else,
    bare numbers included (whose scale is unknown), ranks as :data:`HIGH`."""
    found = Severity.lookup(severity)
    return HIGH if found is None else int(found)


def of_alert(alert: dict[str, Any]) -> Any:
    """An alert's severity field (``severity``, or Falco's ``priority``)."""
    return alert.get("severity", alert.get("priority"))
