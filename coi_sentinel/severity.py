"""The one severity vocabulary: rules, the responder, the audit log and every output use it.

Our five levels, lowest first: ``info``, ``low``, ``medium``, ``high``, ``critical``. Other
vocabularies are read onto them (Sigma's ``informational``; Falco's priorities, ``debug`` ...
``emergency``) and written from them where a consumer expects its own: Falco's priority names
in alerts, RFC 5424 severities in syslog, OpenTelemetry severity numbers in OTLP logs.

=========  ================  ===============  ===================
ours       Falco priority    syslog (5424)    OTel SeverityNumber
=========  ================  ===============  ===================
info       Informational     6 informational  9  INFO
low        Notice            5 notice         10 INFO2
medium     Warning           4 warning        13 WARN
high       Error             3 error          17 ERROR
critical   Critical          2 critical       21 FATAL
=========  ================  ===============  ===================
"""

from __future__ import annotations

import enum
from typing import Any


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def falco(self) -> str:
        """Falco's priority name, as Falco writes it in a JSON alert."""
        return _FALCO[self]

    @property
    def syslog(self) -> int:
        """RFC 5424 severity (0 emergency ... 7 debug)."""
        return _SYSLOG[self]

    @property
    def otel(self) -> int:
        """OpenTelemetry log SeverityNumber."""
        return _OTEL[self]

    @classmethod
    def parse(cls, text: str) -> "Severity":
        """One of our labels, any case; KeyError otherwise (a rule file names ours only)."""
        return cls[text.upper()]

    @classmethod
    def lookup(cls, value: Any) -> "Severity | None":
        """Our label, Sigma's level or Falco's priority (any case), or an enum member (by its
        name); None for anything else, bare numbers included (their scale is unknown)."""
        if isinstance(value, enum.Enum):
            value = value.name
        if not isinstance(value, str):
            return None
        return ALIASES.get(value.strip().lower())


LABELS: tuple[str, ...] = tuple(s.label for s in Severity)

_FALCO = {Severity.INFO: "Informational", Severity.LOW: "Notice", Severity.MEDIUM: "Warning",
          Severity.HIGH: "Error", Severity.CRITICAL: "Critical"}
_SYSLOG = {Severity.INFO: 6, Severity.LOW: 5, Severity.MEDIUM: 4, Severity.HIGH: 3, Severity.CRITICAL: 2}
_OTEL = {Severity.INFO: 9, Severity.LOW: 10, Severity.MEDIUM: 13, Severity.HIGH: 17, Severity.CRITICAL: 21}

#: Falco's eight priorities, highest first, as Falco spells them
FALCO_PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice",
                    "Informational", "Debug")

#: every name read as a severity (lower case) -> ours
ALIASES: dict[str, Severity] = {
    **{s.label: s for s in Severity},
    "informational": Severity.INFO, "debug": Severity.INFO,
    "notice": Severity.LOW,
    "warning": Severity.MEDIUM, "warn": Severity.MEDIUM,
    "error": Severity.HIGH,
    "alert": Severity.CRITICAL, "emergency": Severity.CRITICAL,
}

__all__ = ["ALIASES", "FALCO_PRIORITIES", "LABELS", "Severity"]
