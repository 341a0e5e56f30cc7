"""`top`'s model: daemon status documents (the shape docs/daemon.md gives and the daemon's
Scope.to_status writes) turned into rates, cgroup CPU and memory, and 80-column text."""

from __future__ import annotations

import os

import pytest

from coi_sentinel.host.cgroups import cgroup2_mount
from coi_sentinel.report.live import (Busiest, CgroupUsage, Tracker, cgroup_usage, frame_text)

pytestmark = pytest.mark.unit


def status(n: int, *, state: str = "running", cgroup: str = "/cg/a") -> dict:
    """The n-th status answer of a daemon watching two sessions (counters grow with n)."""
    return {
        "daemon": {"pid": 4242, "started": 1_764_700_000.0,
                   "rules": {"count": 212, "hash": "ab" * 32, "loaded": 1_764_700_001.0},
                   "events": {"exec": 100 * n, "fork": 80 * n, "file_write": 300 * n},
                   "drops": {"file_write": 2}, "kills": 1, "coverage": {"attached": 69, "missing": 4},
                   "subscribers": 2, "rss": 80 << 20},
        "scopes": [
            {"name": "coi-bf640b7a-1", "cgroup": cgroup, "scope_id": 44, "kind": "session",
             "owner_uid": 0, "state": state, "tool": "claude", "network": "restricted",
             "audit": "/a.jsonl", "events": {"exec": 50 * n, "file_write": 200 * n},
             "alerts": {"high": 1, "critical": 2, "warning": 1}, "actions": 1, "drops": 0,
             "registered": 1_764_700_002.0, "killed": False,
             "last_alerts": [{"rule": "ssh_private_key_read", "severity": "high",
                              "output": "SSH private key read (file=/home/code/.ssh/id_rsa)",
                              "time": "2026-12-02T23:48:30.563Z", "ts_ns": 1}]},
            {"name": "watch-host", "cgroup": "", "scope_id": 1, "kind": "watch", "state": "orphan",
             "events": {"exec": 3}, "alerts": {}, "actions": 0, "last_alerts": []},
        ],
    }


def cgroup_files(path, usage_usec: int, memory: int) -> None:
    """A cgroup2 directory's cpu.stat and memory.current, as the kernel writes them."""
    (path / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\n"
                                   f"system_usec {usage_usec // 2}\nnr_periods 0\n")
    (path / "memory.current").write_text(f"{memory}\n")


def test_rates_alerts_and_cgroup_use_between_two_answers(tmp_path):
    cg = str(tmp_path)
    t = Tracker()
    cgroup_files(tmp_path, 1_000_000, 10 << 20)
    first = t.update(status(1, cgroup=cg), now=100.0)
    assert first.daemon.rate == 0 and first.scopes[0].cpu is None      # no rate from one sample
    cgroup_files(tmp_path, 1_500_000, 12 << 20)
    f = t.update(status(3, cgroup=cg), now=102.0)
    d = f.daemon
    assert (d.pid, d.rules, d.drops, d.kills) == (4242, 212, 2, 1)
    assert d.rates == {"file_write": 300.0, "exec": 100.0, "fork": 80.0} and d.rate == 480.0
    a, w = f.scopes
    assert (a.name, a.state, a.tool, a.network) == ("coi-bf640b7a-1", "running", "claude", "restricted")
    assert a.rates == {"file_write": 200.0, "exec": 50.0} and a.rate == 250.0
    assert a.alerts == {"critical": 2, "high": 1, "medium": 1}          # Falco's warning: medium
    assert a.cpu == pytest.approx(25.0) and a.memory == 12 << 20           # 0.5 s CPU in 2 s
    assert (w.kind, w.state, w.cpu, w.memory, w.drops) == ("watch", "orphan", None, None, None)
    assert a.drops == 0
    assert f.interval == 2.0


def test_text_fits_80_columns_and_says_the_state():
    t = Tracker()
    t.update(status(1), now=0.0)
    text = frame_text(t.update(status(2, state="frozen"), now=1.0))
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), [len(x) for x in lines]
    row = next(line for line in lines if line.startswith("coi-bf640b7a-1"))
    assert row.split()[:3] == ["coi-bf640b7a-1", "frozen", "claude"] and "2C 1H 1M" in row
    assert any("ssh_private_key_read" in line and "HIGH" in line for line in lines)


def test_busiest_processes_by_events_per_second():
    b = Busiest()
    procs = [{"pid": 10, "ppid": 1, "name": "node", "cmdline": "node agent.js", "events": 100, "alerts": 0},
             {"pid": 11, "ppid": 10, "name": "sh", "cmdline": "sh -c make", "events": 5000, "alerts": 1}]
    b.update("s", procs, now=0.0)
    procs[0]["events"], procs[1]["events"] = 700, 5100
    rows = b.update("s", procs, now=2.0)
    assert [(r.pid, r.rate) for r in rows] == [(10, 300.0), (11, 50.0)]


def test_cgroup_usage_of_the_real_cgroup2_root():
    root = cgroup2_mount()
    use = cgroup_usage(root)
    assert use.cpu_usec is not None and use.cpu_usec > 0
    assert cgroup_usage(root / "no-such-cgroup-here") == CgroupUsage(None, None)
    if os.path.exists(root / "memory.current") or os.path.isdir("/sys/fs/cgroup/memory"):
        assert use.memory is not None and use.memory > 0
