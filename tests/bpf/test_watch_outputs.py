"""`watch` as an operator runs it with outputs and metrics: real probes scoped to a cgroup the
test makes, a workload in it that a rule flags, the alert on stdout in Falco's exact shape, at
a webhook receiver, in the audit log, and counted by /metrics."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid

import orjson
import pytest
from output_support import WebhookReceiver

from coi_sentinel.host.cgroups import WorkloadCgroup
from support import require_bpf

pytestmark = pytest.mark.bpf

CLI = [sys.executable, "-m", "coi_sentinel.cli.main"]
RULE = """\
- rule: marker_exec
  description: the test's marker command ran
  severity: critical
  events: [exec]
  condition: proc.args contains {marker}
  output: "marker ran (cmdline=%proc.cmdline pid=%proc.pid)"
  tags: [test]
  false_positives: none
"""
FALCO_KEYS = {"time": str, "rule": str, "priority": str, "source": str, "hostname": str,
              "output": str, "tags": list, "output_fields": dict}


def _metrics(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return resp.read().decode()


def test_watch_falco_format_outputs_and_metrics(tmp_path) -> None:
    require_bpf()
    marker = f"coi-out-{uuid.uuid4().hex[:8]}"
    rules = tmp_path / "marker.yaml"
    rules.write_text(RULE.format(marker=marker))
    audit = tmp_path / "audit.jsonl"
    with WorkloadCgroup("coi-outputs") as cg, WebhookReceiver(fail_first=1) as hook:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        w = subprocess.Popen(CLI + ["watch", "--cgroup", str(cg.path), "--rules", str(rules), "--no-bundled",
                                    "--format", "falco", "--duration", "30", "--output", str(audit),
                                    "--metrics", f"127.0.0.1:{port}",
                                    "--alerts-to", f"{hook.url}?backoff=0.01&name=hook"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while b"hooks attached" not in (line := w.stderr.readline()):
                assert line, "watch ended before attaching"

            def enter() -> None:
                (cg.path / "cgroup.procs").write_text("0\n")

            subprocess.run(["/bin/true", marker], check=True, preexec_fn=enter)
            deadline = time.monotonic() + 20
            while not hook.alerts() and time.monotonic() < deadline:
                time.sleep(0.05)
            delivered = 'coi_sentinel_output_delivered_total{output="hook"} 1.0'
            while delivered not in (text := _metrics(port)) and time.monotonic() < deadline:
                time.sleep(0.05)            # the delivery process reports every 50 ms
        finally:
            w.terminate()
            out, err = w.communicate(timeout=60)
    assert w.returncode == 0, err.decode()
    lines = [orjson.loads(x) for x in out.splitlines()]
    assert len(lines) == 1                                    # events are not printed in falco format
    (alert,) = lines
    assert set(alert) == set(FALCO_KEYS) and all(type(alert[k]) is t for k, t in FALCO_KEYS.items())
    assert (alert["rule"], alert["priority"], alert["source"]) == ("marker_exec", "Critical", "syscall")
    assert alert["output_fields"]["proc.cmdline"] == f"/bin/true {marker}"
    (sent,) = hook.alerts()
    assert sent["rule"] == "marker_exec" and sent["time"] == alert["time"]
    assert 'coi_sentinel_alerts_total{rule="marker_exec",severity="critical"} 1.0' in text
    assert 'coi_sentinel_events_total{type="exec"}' in text
    assert delivered in text
    records = [orjson.loads(x) for x in audit.read_bytes().splitlines()]
    assert [(r["rule"], r["time"]) for r in records if r.get("record") == "alert"] == [("marker_exec", alert["time"])]
    (status,) = [r["status"] for r in records if r.get("record") == "outputs"]
    assert status["hook"]["delivered"] == 1 and status["hook"]["lost"] == 0
    assert "output hook: delivered 1" in err.decode()
