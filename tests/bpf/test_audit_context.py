"""The flight recorder on real probes: an alert in one watched cgroup writes that cgroup's
pre-trigger events to the audit log, and nothing of another watched cgroup."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
import pytest

from coi_sentinel.host.cgroups import WorkloadCgroup

from support import require_bpf

pytestmark = pytest.mark.bpf


def _start_in(cg: WorkloadCgroup, argv: list[str]) -> subprocess.Popen:
    procs = cg.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    return subprocess.Popen(argv, preexec_fn=enter, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_alert_writes_pre_trigger_events_of_its_cgroup_only(tmp_path):
    require_bpf()
    from coi_sentinel.audit import AuditLog
    from coi_sentinel.monitor import Monitor, MonitorOptions
    from coi_sentinel.rules import Engine, load_ruleset
    from coi_sentinel.trace import make_header, read_events

    ruleset = load_ruleset(None)
    log_path = tmp_path / "audit.jsonl"
    with WorkloadCgroup("coi-ctx-a") as a, WorkloadCgroup("coi-ctx-b") as b:
        opts = MonitorOptions(cgroups=(str(a.path), str(b.path)),
                              sensitive_prefixes=tuple(ruleset.sensitive_prefixes()),
                              sensitive_suffixes=tuple(ruleset.sensitive_suffixes()))
        with Monitor(opts) as mon:
            audit = AuditLog(log_path, make_header("watch"), events="context")
            mon.pipeline.add_sink(audit)
            alerts = []

            def on_alert(alert) -> None:
                alerts.append(alert)
                audit.write_alert(alert.to_dict(), scope_id=alert.event.scope_id)

            mon.pipeline.add_sink(Engine(ruleset, on_alert=on_alert, table=mon.pipeline.table))
            # b: busy with its own harmless work the whole time
            pb = _start_in(b, [sys.executable, "-c",
                               "import os, time\nfor i in range(40):\n"
                               "    os.spawnv(os.P_WAIT, '/bin/true', ['true', 'b-%d' % i]); time.sleep(0.01)\n"])
            # a: harmless work, then reads the shadow file (a high-severity rule)
            pa = _start_in(a, ["/bin/sh", "-c", "for i in 1 2 3 4 5; do /bin/echo a-$i; done; "
                                                "sleep 0.2; cat /etc/shadow"])
            deadline = time.monotonic() + 20
            while (pa.poll() is None or pb.poll() is None or not alerts) and time.monotonic() < deadline:
                mon.poll(10)
            mon.stream.drain()
            audit.close()
    assert any(al.rule == "shadow_file_read" for al in alerts)
    lines = [orjson.loads(x) for x in log_path.read_bytes().splitlines()]
    ctx = [x for x in lines if x.get("record") == "context"]
    assert ctx and ctx[0]["scope_id"] == a.id
    events = list(read_events([log_path]))
    assert events, "no pre-trigger events were written"
    assert {e.scope_id for e in events} == {a.id}
    echoed = [e for e in events if e.type.label == "exec" and e.filename == "/bin/echo"]
    assert len(echoed) == 5
    # the context comes right before the alert it explains (then its events, then the alert)
    at = next(i for i, x in enumerate(lines) if x.get("record") == "alert" and x["rule"] == "shadow_file_read")
    ctx_at = next(i for i, x in enumerate(lines) if x.get("record") == "context")
    assert ctx_at < at and all(x.get("type") for x in lines[ctx_at + 1:at])
