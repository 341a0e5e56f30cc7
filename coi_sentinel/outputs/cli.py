"""The command-line side of outputs and metrics, shared by ``watch``, ``replay`` (and the
daemon): one option decorator and :class:`AlertSinks`, which the command calls at four
places (each alert, each action, each loop tick, the end)."""

from __future__ import annotations

import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import click
import orjson

from ..records import OutputLossRecord, OutputsRecord

if TYPE_CHECKING:
    from ..records import ActionRecord, AlertRecord
    from ..rules.alert import Alert
    from . import OutputSet
    from .metrics import Metrics

FORMATS = ("text", "json", "falco")


def alert_output_options(*, metrics: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--alerts-to URL`` (repeatable), ``--outputs-config FILE``, ``--format`` and, with
    ``metrics``, ``--metrics HOST:PORT``. The command receives ``alerts_to``,
    ``outputs_config``, ``fmt`` (and ``metrics_addr``)."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        if metrics:
            f = click.option("--metrics", "metrics_addr", metavar="HOST:PORT", default=None,
                             help="Serve Prometheus metrics on HOST:PORT/metrics (off by default; "
                                  "names start coi_sentinel_).")(f)
        f = click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                         help="How alerts are printed: text, json (our alert record, as --json) or "
                              "falco (exactly Falco's JSON alert; events are not printed).")(f)
        f = click.option("--outputs-config", "outputs_config", metavar="FILE",
                         type=click.Path(dir_okay=False, exists=True),
                         help="TOML file whose [[outputs]] tables say where alerts also go.")(f)
        f = click.option("--alerts-to", "alerts_to", multiple=True, metavar="URL",
                         help="Also send alerts here (repeatable): stdout, file:PATH, "
                              "syslog+udp|tcp|tls://HOST:PORT, syslog:/dev/log, http(s)://..., "
                              "otlp+http://HOST:4318; options after '?', e.g. "
                              "'?min=high&rate=10/m&format=falco'. See docs/outputs.md.")(f)
        return f

    return deco


class AlertSinks:
    """Outputs, metrics and the alert format of one command run."""

    def __init__(self, outputs: "OutputSet | None", metrics: "Metrics | None", fmt: str) -> None:
        self.outputs = outputs
        self.metrics = metrics
        self.fmt = fmt
        self.hostname = socket.gethostname()
        self._monitor: Any = None
        self._tick_at = 0.0
        self._closed = False
        #: live alerts' clock offset (wall - monotonic), one value for every form of an alert;
        #: taken again once a second in tick(), so clock adjustments are followed
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()

    @classmethod
    def open(cls, alerts_to: tuple[str, ...] = (), outputs_config: str | None = None,
             fmt: str | None = None, metrics_addr: str | None = None, *, as_json: bool = False) -> "AlertSinks":
        """Parse everything first (a bad URL stops before anything starts), then start."""
        from . import OutputSet
        from .metrics import Metrics, parse_address

        address = parse_address(metrics_addr) if metrics_addr else None
        outputs = OutputSet.from_options(alerts_to, config=outputs_config) if (alerts_to or outputs_config) else None
        metrics = None
        try:
            if address is not None:
                metrics = Metrics()
                if outputs is not None:
                    metrics.watch_outputs(outputs)
                metrics.serve(*address)
        except BaseException:
            if outputs is not None:
                outputs.close(0.5)
            raise
        return cls(outputs, metrics, fmt or ("json" if as_json else "text"))

    @property
    def falco(self) -> bool:
        return self.fmt == "falco"

    # ---- wiring helpers ----
    def watch_monitor(self, mon: Any) -> None:
        """Metrics of a live monitor: events from its pipeline (read when scraped); drops, full
        maps and decode errors from the summary the event loop takes once a second (tick)."""
        self._monitor = mon
        if self.metrics is not None:
            self.metrics.watch_pipeline(mon.pipeline)

    def timed(self, sink: Callable[..., None]) -> Callable[..., None]:
        """The engine as a pipeline sink, timed 1 in N events when metrics are on."""
        return self.metrics.timed(sink) if self.metrics is not None else sink

    # ---- the four calls ----
    def emit(self, alert: "Alert", *, wall_offset_ns: int | None = None, hostname: str | None = None,
             record: "AlertRecord | None" = None) -> None:
        """``record``: the alert's record already made with the same clock and host (the
        sentinel's lane makes one for the log): the outputs send it instead of a new one."""
        if self.metrics is not None:
            self.metrics.alert(alert)
        if self.outputs is not None:
            self.outputs.emit(alert, wall_offset_ns=self.wall_offset_ns if wall_offset_ns is None else wall_offset_ns,
                              hostname=hostname, record=record)

    def record(self, alert: "Alert") -> dict[str, Any]:
        """The alert record (audit log, --json) with the same time as every output's."""
        return alert.to_dict(wall_offset_ns=self.wall_offset_ns, hostname=self.hostname)

    def action(self, record: "ActionRecord") -> None:
        if self.metrics is not None:
            self.metrics.action(record)

    def tick(self, audit: Any = None) -> None:
        """From the event loop, after each batch of events: the alerts of the batch go to the
        delivery process (one write); at most once a second, the monitor's drop counters for
        the metrics and the outputs' new losses into the audit log."""
        if self.outputs is not None:
            self.outputs.flush()
        now = time.monotonic()
        if now - self._tick_at < 1.0:
            return
        self._tick_at = now
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()
        if self._monitor is not None and self.metrics is not None and self._monitor.stream is not None:
            self.metrics.update_monitor(self._monitor.summary())
        self._record_losses(audit)

    def close(self, audit: Any = None, timeout: float = 3.0) -> dict[str, Any] | None:
        """Flush the outputs (bounded), record their status and losses in the audit log, stop
        the metrics server. Returns the outputs' status (for the summary), None without any."""
        if self._closed:
            return self.outputs.status() if self.outputs is not None else None
        self._closed = True
        status = None
        if self.outputs is not None:
            self.outputs.close(timeout)
            self._record_losses(audit)
            status = self.outputs.status()
            if audit is not None:
                audit.write_record(OutputsRecord(status=status))
        if self.metrics is not None:
            self.metrics.close()
        return status

    def _record_losses(self, audit: Any) -> None:
        if self.outputs is None:
            return
        lost = self.outputs.take_losses()
        if lost:
            if audit is not None:
                audit.write_record(OutputLossRecord(lost=lost))
            for name, reasons in lost.items():
                click.echo(f"coi-sentinel: output {name}: {sum(reasons.values())} alert(s) not "
                           f"delivered ({', '.join(f'{k} {v}' for k, v in reasons.items())})", err=True)

    # ---- printing ----
    def falco_line(self, alert: "Alert", *, wall_offset_ns: int | None = None, hostname: str | None = None) -> str:
        offset = self.wall_offset_ns if wall_offset_ns is None else wall_offset_ns
        return orjson.dumps(alert.to_falco(wall_offset_ns=offset, hostname=hostname or self.hostname)).decode()


def print_outputs_status(status: dict[str, Any] | None, as_json: bool, file: Any = None) -> None:
    """One line per output at the end of a run (stderr)."""
    if not status or as_json:
        return
    for name, s in status.items():
        lost = f", lost {s['lost']} ({', '.join(f'{k} {v}' for k, v in s['lost_by_reason'].items())})" \
            if s["lost"] else ""
        click.echo(f"coi-sentinel: output {name}: delivered {s['delivered']}{lost}", file=file or sys.stderr)


__all__ = ["AlertSinks", "FORMATS", "alert_output_options", "print_outputs_status"]
