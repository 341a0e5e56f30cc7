"""Traces: recorded events and records as NDJSON, the format of ``record``, ``replay`` and the
audit log (docs/traces.md)."""

from .format import KIND, RECORD_KINDS, SCHEMA, make_header
from .reader import TraceReader, read_events
from .writer import TraceWriter, rewrite_header

__all__ = ["KIND", "RECORD_KINDS", "SCHEMA", "make_header", "TraceReader", "read_events",
           "TraceWriter", "rewrite_header"]
