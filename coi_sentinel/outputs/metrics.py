"""Prometheus metrics (prometheus-client), every name prefixed ``coi_sentinel_``.

The event path pays almost nothing: counts it already keeps (events and drops by type, full
aggregation maps, ring-buffer fill, sessions by state, the outputs' counters) are read from
*sources* - callables given to :class:`Metrics` - only when Prometheus scrapes. Alerts are
counted in a plain dict (read at scrape too); only actions and a 1-in-``sample`` timing of the
rule engine go through prometheus-client as they happen.

    metrics = Metrics()
    metrics.watch_pipeline(mon.pipeline)    # events by type, read when scraped
    metrics.update_monitor(mon.summary())   # drops, maps full: from the event loop, 1/s
    metrics.watch_outputs(outputs)
    engine.add_callback(metrics.alert)
    pipeline.add_sink(metrics.timed(engine))
    metrics.serve("127.0.0.1", 9464)        # GET /metrics
    ...
    metrics.close()

============================================  =========  ====================================
name                                          type       labels
============================================  =========  ====================================
coi_sentinel_events_total                     counter    type
coi_sentinel_drops_total                      counter    type (ring buffer full, in the kernel)
coi_sentinel_aggregation_maps_full_total      counter    map
coi_sentinel_decode_errors_total              counter
coi_sentinel_alerts_total                     counter    rule, severity
coi_sentinel_actions_total                    counter    action, result (ok, failed)
coi_sentinel_action_latency_seconds           histogram  action (event -> action done)
coi_sentinel_rule_engine_seconds              histogram  (per event, sampled)
coi_sentinel_ringbuf_fill_ratio               gauge      ring
coi_sentinel_sessions                         gauge      state
coi_sentinel_output_queue_length              gauge      output
coi_sentinel_output_delivered_total           counter    output
coi_sentinel_output_lost_total                counter    output, reason
coi_sentinel_output_suppressed_total          counter    output (per-rule rate limit)
============================================  =========  ====================================
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..events.model import Event
    from ..events.proctable import Process
    from ..records import ActionRecord
    from ..rules.alert import Alert
    from . import OutputSet

log = logging.getLogger(__name__)

PREFIX = "coi_sentinel"
Source = Callable[[], Mapping[str, Any]]

#: seconds: from 1 us (one rule evaluation) to 100 ms
ENGINE_BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1)
#: seconds: an action from the event to done (freeze, kill)
ACTION_BUCKETS = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464``; ``:9464`` is 127.0.0.1) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics: expected HOST:PORT (127.0.0.1:9464), not {text!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def _snapshot(source: Source | None) -> dict[str, Any]:
    """A copy of what a source returns; a counter being updated meanwhile is read again."""
    if source is None:
        return {}
    for _ in range(3):
        try:
            return dict(source())
        except RuntimeError:        # "dictionary changed size during iteration"
            continue
    return {}


class Metrics:
    def __init__(self, *, sample: int = 64) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        #: (rule, severity) -> alerts: a plain count on the event path (prometheus-client's
        #: labels().inc() takes a lock and a lookup, 2.5 us), read by the collector at scrape
        self.alerts: dict[tuple[str, str], int] = {}
        self.actions = Counter(f"{PREFIX}_actions", "Response actions taken, by action and result",
                               ["action", "result"], registry=r)
        self.action_latency = Histogram(f"{PREFIX}_action_latency_seconds",
                                        "Time from the event to the action done", ["action"],
                                        buckets=ACTION_BUCKETS, registry=r)
        self.engine_time = Histogram(f"{PREFIX}_rule_engine_seconds",
                                     f"Rule-engine time per event (1 event in {sample} timed)",
                                     buckets=ENGINE_BUCKETS, registry=r)
        self.sample = max(1, sample)
        #: name -> callable returning {label: value}; read at scrape time
        self.sources: dict[str, Source | None] = {
            "events": None, "drops": None, "maps_full": None, "decode_errors": None,
            "ringbuf_fill": None, "sessions": None,
        }
        self.outputs: list["OutputSet"] = []
        r.register(_Collector(self))
        self._server: Any = None
        self._thread: Any = None
        self.address: tuple[str, int] | None = None

    # ---- wiring ----
    def update_monitor(self, summary: Mapping[str, Any]) -> None:
        """Drops, full aggregation maps and decode errors from a monitor's ``summary()``. Call
        it from the event loop (once a second is plenty): the kernel maps are read there, never
        from the metrics server's thread."""
        snap = dict(summary)
        self.sources["drops"] = lambda: snap.get("drops") or {}
        self.sources["maps_full"] = lambda: snap.get("aggregation_maps_full") or {}
        self.sources["decode_errors"] = lambda: {"": snap.get("decode_errors", 0)}

    def watch_pipeline(self, pipeline: Any) -> None:
        """Events by type from a pipeline (replay, tests, the bench)."""
        self.sources["events"] = lambda: pipeline.counts

    def watch_outputs(self, outputs: "OutputSet") -> None:
        self.outputs.append(outputs)

    def set_source(self, name: str, source: Source) -> None:
        """``ringbuf_fill`` ({ring: 0..1}), ``sessions`` ({state: n}) and the others above."""
        if name not in self.sources:
            raise KeyError(name)
        self.sources[name] = source

    # ---- the event path ----
    def alert(self, alert: "Alert") -> None:
        """An engine callback."""
        key = (alert.rule, alert.severity.label)
        self.alerts[key] = self.alerts.get(key, 0) + 1

    def action(self, record: "ActionRecord") -> None:
        """An action taken (``action``, ``ok``, ``latency_ns``)."""
        act = record.action.value
        self.actions.labels(act, "ok" if record.ok else "failed").inc()
        latency = record.latency_ns
        if isinstance(latency, int):
            self.action_latency.labels(act).observe(latency / 1e9)

    def timed(self, sink: Callable[["Event", "Process"], None]) -> Callable[["Event", "Process"], None]:
        """``sink`` (the engine) wrapped so that one call in ``sample`` is timed."""
        every = self.sample
        observe = self.engine_time.observe
        clock = time.perf_counter
        state = [0]

        def timed_sink(event: "Event", process: "Process") -> None:
            state[0] += 1
            if state[0] % every:
                sink(event, process)
                return
            t0 = clock()
            sink(event, process)
            observe(clock() - t0)

        timed_sink.close = getattr(sink, "close", lambda: None)    # type: ignore[attr-defined]
        return timed_sink

    # ---- exposition ----
    def text(self) -> bytes:
        """The exposition text (what /metrics answers)."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve /metrics on HOST:PORT in a thread; returns the bound address (port 0: any)."""
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as err:
            raise ConfigError(f"--metrics {host}:{port}: {err.strerror}") from err
        self.address = self._server.server_address[:2]
        log.info("metrics on http://%s:%d/metrics", *self.address)
        return self.address

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Collector:
    """Reads the sources when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list:
        return []

    def collect(self):  # noqa: ANN201 - prometheus_client's protocol
        src = self.m.sources
        yield _counter("events", "Events seen, by type", "type", _snapshot(src["events"]))
        yield _counter("drops", "Records lost in the kernel (ring buffer full), by type", "type",
                       _snapshot(src["drops"]))
        alerts = CounterMetricFamily(f"{PREFIX}_alerts", "Alerts raised, by rule and severity",
                                     labels=["rule", "severity"])
        for (rule, sev), n in _snapshot(lambda: self.m.alerts).items():
            alerts.add_metric([rule, sev], n)
        yield alerts
        yield _counter("aggregation_maps_full", "Summaries not kept because a kernel map was full",
                       "map", _snapshot(src["maps_full"]))
        dec = CounterMetricFamily(f"{PREFIX}_decode_errors", "Records that could not be decoded")
        dec.add_metric([], sum(v for v in _snapshot(src["decode_errors"]).values() if isinstance(v, (int, float))))
        yield dec
        ring = GaugeMetricFamily(f"{PREFIX}_ringbuf_fill_ratio", "Ring-buffer fill (0..1)", labels=["ring"])
        for name, v in _snapshot(src["ringbuf_fill"]).items():
            ring.add_metric([str(name)], float(v))
        yield ring
        sess = GaugeMetricFamily(f"{PREFIX}_sessions", "Monitored sessions, by state", labels=["state"])
        for state, v in _snapshot(src["sessions"]).items():
            sess.add_metric([str(state)], float(v))
        yield sess
        qlen = GaugeMetricFamily(f"{PREFIX}_output_queue_length", "Alerts waiting in an output's queue",
                                 labels=["output"])
        done = CounterMetricFamily(f"{PREFIX}_output_delivered", "Alerts an output delivered",
                                   labels=["output"])
        lost = CounterMetricFamily(f"{PREFIX}_output_lost", "Alerts an output could not deliver",
                                   labels=["output", "reason"])
        supp = CounterMetricFamily(f"{PREFIX}_output_suppressed", "Alerts held back by the per-rule rate limit",
                                   labels=["output"])
        for outset in self.m.outputs:
            for name, st in outset.status().items():
                qlen.add_metric([name], st["queued"])
                done.add_metric([name], st["delivered"])
                supp.add_metric([name], st["suppressed"])
                for reason, n in {"queue_full": 0, **st["lost_by_reason"]}.items():
                    lost.add_metric([name, reason], n)
        yield from (qlen, done, lost, supp)


def _counter(name: str, doc: str, label: str, values: Mapping[str, Any]) -> CounterMetricFamily:
    fam = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for key, v in values.items():
        if isinstance(v, (int, float)):
            fam.add_metric([str(key)], v)
    return fam
