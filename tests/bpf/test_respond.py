"""Freeze and kill on real processes in a cgroup made for the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coi_sentinel.host.cgroups import WorkloadCgroup
from coi_sentinel.host import freezer
from coi_sentinel.respond import killer

from support import require_bpf

pytestmark = pytest.mark.bpf


def _joiner(cg):
    """A preexec function that moves the child into ``cg`` before it execs."""
    procs = cg.path / "cgroup.procs"

    def enter():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    return enter


@pytest.fixture
def busy_cgroup():
    require_bpf()
    with WorkloadCgroup("coi-resp") as cg:
        enter = _joiner(cg)
        # a counter that writes a file every 5 ms: if it is frozen the file stops growing
        p = subprocess.Popen([sys.executable, "-c",
                              "import time, sys\nf = open(sys.argv[1], 'a', buffering=1)\n"
                              "for i in range(100000):\n    f.write('x\\n'); time.sleep(0.005)\n",
                              str(cg.path.name)], preexec_fn=enter, cwd="/tmp")
        out = Path("/tmp") / cg.path.name
        deadline = time.monotonic() + 30           # an interpreter's start on a loaded machine
        while not out.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.exists(), f"the workload did not start (exit {p.poll()})"
        yield cg, p, str(out)
        p.kill()
        p.wait()
        out.unlink()


def test_freeze_stops_the_workload_and_thaw_resumes(busy_cgroup):
    cg, p, out = busy_cgroup
    took = freezer.set_frozen(cg.path, True)
    assert freezer.is_frozen(cg.path)
    size = os.path.getsize(out)
    time.sleep(0.1)
    assert os.path.getsize(out) == size
    freezer.set_frozen(cg.path, False)
    time.sleep(0.1)
    assert os.path.getsize(out) > size
    print(f"cgroup2 freeze took {took / 1e6:.3f} ms")


def test_kill_tree_stays_inside_its_cgroup(busy_cgroup):
    cg, p, _ = busy_cgroup
    outsider = subprocess.Popen(["sleep", "30"])
    try:
        # even if asked to kill from the outsider, nothing outside the cgroup is touched
        assert killer.kill_tree(outsider.pid, allowed_cgroup=cg.path) == []
        assert outsider.poll() is None
        killed = killer.kill_tree(p.pid, allowed_cgroup=cg.path)
        assert p.pid in killed
        assert p.wait(timeout=5) == -9
    finally:
        outsider.kill()
        outsider.wait()


def test_kill_tree_returns_once_the_tree_is_dead_and_kills_the_root_last():
    """Whoever waits on the root (the agent's shell) must not find its children still running
    when the root's death wakes it: the descendants die first, and on return none runs."""
    require_bpf()
    with WorkloadCgroup("coi-tree") as cg:
        root = subprocess.Popen(["sh", "-c", "sleep 1002 & sleep 1003 & exec sleep 1004"],
                                preexec_fn=_joiner(cg))
        try:
            deadline = time.monotonic() + 5
            while len(killer.process_tree(root.pid)) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            tree = killer.process_tree(root.pid)
            assert len(tree) == 3, tree
            killed = killer.kill_tree(root.pid, allowed_cgroup=cg.path)
            assert sorted(killed) == sorted(tree) and killed[-1] == root.pid
            running = [p for p in tree if not killer._dead(p)]
            assert running == []
            assert root.wait(timeout=5) == -9
        finally:
            root.kill()
            root.wait()


def test_kill_cgroup_empties_it(busy_cgroup):
    cg, p, _ = busy_cgroup
    killer.kill_cgroup(cg.path)
    assert p.wait(timeout=5) == -9
    assert cg.pids() == []


def test_critical_alert_freezes_the_cgroup_then_kills(busy_cgroup):
    """A kill decided in Python: every task is stopped at once (the freeze), then killed; the
    record says how long each step took."""
    from coi_sentinel.events.proctable import ProcessTable
    from coi_sentinel.respond.policy import ActionPolicy
    from coi_sentinel.respond.responder import Responder, Target
    from coi_sentinel.rules.alert import Alert, ProcessInfo
    from coi_sentinel.rules.model import Severity

    cg, p, out = busy_cgroup
    responder = Responder(ActionPolicy(), ProcessTable())
    responder.add_target(Target("victim", cg.path))
    alert = Alert("reverse_shell_socket_dup", Severity.CRITICAL, "shell", time.monotonic_ns(), (),
                  ProcessInfo(p.pid, 0, "python3", sys.executable, "python3 -c ...", 0), (), "victim",
                  cg.id, None, None, (), None, "rules/x.yaml:1", "event")
    record = responder(alert)
    assert record.ok and record.action == "kill"
    assert record.freeze_ns is not None and record.freeze_ns > 0 and record.kill_ns > 0
    assert p.wait(timeout=5) == -9
    assert cg.pids() == []
    freezer.set_frozen(cg.path, False)     # an empty cgroup: thawed so it can be removed
