"""OTLP logs over HTTP/protobuf, through the OpenTelemetry SDK's exporter.

Each alert is one log record: time the event's wall-clock time, severity from
:class:`~coi_sentinel.severity.Severity` (``otel`` number, Falco's priority as the text), body
the alert's output sentence, event name ``coi_sentinel.alert`` and attributes for everything
else (``rule``, ``severity``, ``tags``, ``container``, ``session.id``, ``process.pid``...,
``output_fields.<field>``); the resource says ``service.name=coi-sentinel`` and ``host.name``.
The exporter POSTs a batch of them to ``.../v1/logs``; a failed batch is tried again
(``retries``, default 3) and then counted lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .base import DeliveryError, Output, Record
from .spec import OutputSpec

SCOPE = "coi_sentinel.outputs"


def attributes(d: dict[str, Any]) -> dict[str, Any]:
    """An alert record's OTLP attributes: primitives or lists of them, nothing None."""
    session = d.get("session") or {}
    proc = d.get("process") or {}
    attrs: dict[str, Any] = {
        "rule": d.get("rule"), "severity": d.get("severity"), "priority": d.get("priority"),
        "source": d.get("source"), "kind": d.get("kind"), "tags": d.get("tags"),
        "container": d.get("container"), "scope_id": d.get("scope_id"),
        "rule_location": d.get("rule_location"), "action": d.get("action"),
        "session.id": session.get("id"), "session.tool": session.get("tool"),
        "process.pid": proc.get("pid"), "process.ppid": proc.get("ppid"),
        "process.name": proc.get("name"), "process.exe": proc.get("exe"),
        "process.command_line": proc.get("cmdline"), "process.uid": proc.get("uid"),
        "ancestry": [f"{a.get('name')}({a.get('pid')})" for a in d.get("ancestry") or ()],
        "value": d.get("value"),
    }
    for name, value in (d.get("output_fields") or {}).items():
        attrs[f"output_fields.{name}"] = value
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = [v if isinstance(v, (str, int, float, bool)) else str(v) for v in value if v is not None]
        elif not isinstance(value, (str, int, float, bool)):
            value = str(value)
        out[key] = value
    return out


class OtlpOutput(Output):
    def __init__(self, spec: OutputSpec) -> None:
        super().__init__(spec)
        self.batch_size = spec.opt("batch", 128)
        self.retries = spec.opt("retries", 3)
        self.backoff = spec.opt("backoff", 0.2)
        self.timeout: float = spec.opt("timeout", 5.0)
        self._exporter: Any = None
        self._resources: dict[str, Any] = {}
        self._scope: Any = None

    def open(self) -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from .. import __version__

        # the exporter logs each failure itself; ours are counted and reported
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        self._exporter = OTLPLogExporter(endpoint=self.spec.target, headers=dict(self.spec.headers),
                                         timeout=self.timeout, certificate_file=self.spec.opt("ca", None))
        self._scope = InstrumentationScope(SCOPE, __version__)

    def _resource(self, host: str) -> Any:
        res = self._resources.get(host)
        if res is None:
            from opentelemetry.sdk.resources import Resource

            from .. import __version__
            res = Resource.create({"service.name": "coi-sentinel", "service.version": __version__,
                                   "host.name": host})
            self._resources[host] = res
        return res

    def render(self, record: Record) -> Any:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord

        d = record.data
        sev = record.severity
        log_record = LogRecord(
            timestamp=record.wall_ns, observed_timestamp=time.time_ns(),
            severity_number=SeverityNumber(sev.otel), severity_text=sev.falco,
            body=d.get("output", ""), attributes=attributes(d), event_name="coi_sentinel.alert")
        return ReadableLogRecord(log_record=log_record, resource=self._resource(str(d.get("hostname", ""))),
                                 instrumentation_scope=self._scope)

    def deliver(self, payloads: list[Any]) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        result = self._exporter.export(payloads)
        if result != LogRecordExportResult.SUCCESS:
            raise DeliveryError(f"{self.spec.target}: the OTLP export failed")

    def shut(self) -> None:
        if self._exporter is not None:
            self._exporter.shutdown()
