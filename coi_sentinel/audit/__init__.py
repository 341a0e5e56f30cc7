"""The audit log (a trace with a hash chain), its verification, and the flight recorder."""

from .log import AuditLog
from .policy import AuditPolicy
from .recorder import FlightRecorder
from .verify import VerifyReport, verify

__all__ = ["AuditLog", "AuditPolicy", "FlightRecorder", "VerifyReport", "verify"]
