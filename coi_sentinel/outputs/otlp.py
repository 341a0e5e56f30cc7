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

from .base import DeliveryError, Item, Output
from .spec import OutputSpec

SCOPE = "coi_sentinel.outputs"


def attributes(alert: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """An alert's OTLP attributes: primitives or lists of them, nothing None."""
    attrs: dict[str, Any] = {
        "rule": alert.rule, "severity": alert.severity.label, "priority": alert.severity.falco,
        "source": "syscall", "kind": alert.kind, "tags": list(alert.tags),
        "container": alert.container, "scope_id": alert.scope_id,
        "rule_location": alert.source, "action": alert.action,
        "session.id": alert.session_id, "session.tool": alert.session_tool,
        "process.pid": alert.process.pid, "process.ppid": alert.process.ppid,
        "process.name": alert.process.name, "process.exe": alert.process.exe,
        "process.command_line": alert.process.cmdline, "process.uid": alert.process.uid,
        "ancestry": [f"{a.name}({a.pid})" for a in alert.ancestry],
        "value": alert.value,
    }
    for name, value in fields.items():
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

    def render(self, item: Item) -> Any:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord

        alert, offset, host = item
        record = LogRecord(
            timestamp=alert.ts_ns + offset, observed_timestamp=time.time_ns(),
            severity_number=SeverityNumber(alert.severity.otel), severity_text=alert.severity.falco,
            body=alert.output, attributes=attributes(alert, dict(alert.output_fields)),
            event_name="coi_sentinel.alert")
        return ReadableLogRecord(log_record=record, resource=self._resource(host),
                                 instrumentation_scope=self._scope)

    def deliver(self, payloads: list[Any]) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        result = self._exporter.export(payloads)
        if result != LogRecordExportResult.SUCCESS:
            raise DeliveryError(f"{self.spec.target}: the OTLP export failed")

    def shut(self) -> None:
        if self._exporter is not None:
            self._exporter.shutdown()
