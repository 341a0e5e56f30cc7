"""Metrics: the exposition names, and a real Prometheus (Debian's) started by the test with a
private config and data directory in tmp_path, scraping our endpoint on loopback and answering
coi_sentinel_events_total through its HTTP query API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from output_support import RULES, exec_event

from coi_sentinel.action import Action
from coi_sentinel.outputs import OutputSet
from coi_sentinel.outputs.metrics import Metrics, parse_address
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.records import ActionRecord
from coi_sentinel.rules import Engine, load_ruleset

pytestmark = pytest.mark.unit

NAMES = ["events_total", "drops_total", "aggregation_maps_full_total", "decode_errors_total",
         "alerts_total", "actions_total", "action_latency_seconds_bucket",
         "rule_engine_seconds_bucket", "ringbuf_fill_ratio", "sessions", "output_queue_length",
         "output_delivered_total", "output_lost_total", "output_suppressed_total"]


def _fed(tmp_path: Path, metrics: Metrics, outputs: OutputSet | None = None, n: int = 200) -> Pipeline:
    """A pipeline with the real engine (timed) feeding alerts to the metrics and outputs."""
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES.format(severity="high"))
    pipeline = Pipeline()
    engine = Engine(load_ruleset([rules], replace_bundled=True), table=pipeline.table)
    engine.add_callback(metrics.alert)
    if outputs is not None:
        engine.add_callback(outputs.emit)
        metrics.watch_outputs(outputs)
    pipeline.add_sink(metrics.timed(engine))
    metrics.watch_pipeline(pipeline)
    pipeline.feed(exec_event(10, "/usr/bin/node", "node", ppid=1))
    for i in range(n):
        name = "/bin/bash" if i % 50 == 0 else "/usr/bin/cc"
        pipeline.feed(exec_event(100 + i, name, name.rsplit("/", 1)[1], ts=1_000_000_000 + i))
    return pipeline


def test_exposition_names_and_values(tmp_path: Path) -> None:
    metrics = Metrics(sample=8)
    outs = OutputSet.from_options([f"file:{tmp_path}/a.jsonl?name=file"])
    _fed(tmp_path, metrics, outs)
    outs.close()
    metrics.set_source("sessions", lambda: {"running": 2, "frozen": 1})
    metrics.set_source("ringbuf_fill", lambda: {"hi": 0.25})
    metrics.update_monitor({"drops": {"file_write": 3}, "aggregation_maps_full": {"file_agg": 1},
                            "decode_errors": 2})
    metrics.action(ActionRecord(Action.KILL_PROCESS, "rules", True, latency_ns=2_000_000))
    text = metrics.text().decode()
    for name in NAMES:
        assert f"\ncoi_sentinel_{name}" in text, name
    assert 'coi_sentinel_events_total{type="exec"} 201.0' in text
    assert 'coi_sentinel_alerts_total{rule="shell_in_agent",severity="high"} 4.0' in text
    assert 'coi_sentinel_output_delivered_total{output="file"} 4.0' in text
    assert 'coi_sentinel_drops_total{type="file_write"} 3.0' in text
    assert 'coi_sentinel_aggregation_maps_full_total{map="file_agg"} 1.0' in text
    assert "coi_sentinel_decode_errors_total 2.0" in text
    assert 'coi_sentinel_sessions{state="frozen"} 1.0' in text
    assert 'coi_sentinel_rule_engine_seconds_count 25.0' in text          # 201 events, 1 in 8 timed
    assert 'coi_sentinel_action_latency_seconds_count{action="kill-process"} 1.0' in text


@pytest.mark.parametrize("text, want", [("127.0.0.1:9464", ("127.0.0.1", 9464)),
                                        (":9464", ("127.0.0.1", 9464)), ("[::1]:80", ("::1", 80))])
def test_metrics_address(text, want) -> None:
    assert parse_address(text) == want


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as resp:
        return json.load(resp)["data"]["result"]


def test_prometheus_scrapes_events_total(tmp_path: Path) -> None:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("needs prometheus (Debian package prometheus; scripts/setup.sh installs it)")
    metrics = Metrics()
    _fed(tmp_path, metrics)
    host, port = metrics.serve("127.0.0.1", 0)
    prom_port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: coi-sentinel
    static_configs:
      - targets: ["{host}:{port}"]
""")
    proc = subprocess.Popen([exe, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        result: list = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                result = _query(prom_port, 'coi_sentinel_events_total{type="exec"}')
            except OSError:
                result = []
            if result:
                break
            time.sleep(0.2)
        assert result, "Prometheus returned no coi_sentinel_events_total within 20 s"
        assert float(result[0]["value"][1]) == 201 > 0
        assert result[0]["metric"]["job"] == "coi-sentinel"
        alerts = _query(prom_port, "sum(coi_sentinel_alerts_total)")
        assert float(alerts[0]["value"][1]) == 4
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        metrics.close()
