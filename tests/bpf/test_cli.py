"""The watcher and doctor as a user runs them: real processes, real probes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import orjson
import pytest

from support import require_bpf

pytestmark = pytest.mark.bpf

CLI = [sys.executable, "-m", "coi_sentinel.cli.main"]


def test_watch_json_shows_a_true_run_in_the_window():
    require_bpf()
    marker = f"coi-test-{uuid.uuid4().hex[:8]}"
    w = subprocess.Popen(CLI + ["watch", "--json", "--duration", "5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # the coverage record on stderr says the probes are attached
    line = w.stderr.readline()
    assert b'"record":"coverage"' in line, line
    subprocess.run(["/bin/true", marker], check=True)
    out, err = w.communicate(timeout=60)
    assert w.returncode == 0, err
    events = [orjson.loads(x) for x in out.splitlines()]
    hits = [e for e in events if e["type"] == "exec" and marker in e["argv"]]
    assert len(hits) == 1
    assert hits[0]["filename"] == "/bin/true" and hits[0]["ppid"] == os.getpid()
    summary = orjson.loads(err.splitlines()[-1])
    assert summary["record"] == "summary" and summary["events"]["exec"] >= 1
    assert "drops" in summary


def test_watch_sigterm_detaches_and_exits_zero():
    require_bpf()
    w = subprocess.Popen(CLI + ["watch", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert b"coverage" in w.stderr.readline()
    w.terminate()
    _, err = w.communicate(timeout=30)
    assert w.returncode == 0
    assert b'"record":"summary"' in err


def test_watch_unknown_container_is_one_clear_line():
    require_bpf()
    res = subprocess.run(CLI + ["watch", "--container", "no-such-container-xyz"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0
    assert "no-such-container-xyz" in res.stderr and "Traceback" not in res.stderr


def test_doctor_as_root_reports_coverage():
    require_bpf()
    res = subprocess.run(CLI + ["doctor", "--json"], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = orjson.loads(res.stdout)
    assert report["ok"] and report["verdict"].startswith("ready")
    fams = report["probes"]["families"]
    assert set(fams) == {"exec", "proc", "net", "io", "file", "priv", "uring", "pipe"}
    assert fams["exec"]["attached"] and not fams["exec"]["missing"]
    priv = fams["priv"]
    if "syscalls:sys_enter_init_module" not in priv["attached"]:
        # this kernel has no module tracepoints: the generic hooks stand in, and doctor says so
        assert "raw_syscalls:sys_enter" in priv["attached"]
        assert set(priv["substituted"]) == {"syscalls:sys_enter_init_module", "syscalls:sys_exit_init_module",
                                            "syscalls:sys_enter_finit_module", "syscalls:sys_exit_finit_module"}
        assert not priv["missing"] and report["verdict"] == "ready: every hook attached"


def test_doctor_as_normal_user_says_what_is_missing():
    require_bpf()
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv):
        pytest.skip("needs setpriv (util-linux) to drop root")
    env = dict(os.environ, HOME="/nonexistent")
    res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] + CLI + ["doctor"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "verdict: cannot monitor" in res.stdout and "root" in res.stdout


def test_watch_without_root_is_one_line():
    require_bpf()
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv):
        pytest.skip("needs setpriv (util-linux) to drop root")
    res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] + CLI + ["watch"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.startswith("coi-sentinel: error:") and "root" in res.stderr
    assert "Traceback" not in res.stderr


def test_status_lists_a_running_watch_with_its_drops():
    require_bpf()
    w = subprocess.Popen(CLI + ["watch", "--json", "--alerts-only"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        assert b"coverage" in w.stderr.readline()
        deadline = time.time() + 10
        mine = []
        while time.time() < deadline and not mine:
            time.sleep(0.5)
            res = subprocess.run(CLI + ["status", "--json"], capture_output=True, timeout=30)
            mine = [m for m in orjson.loads(res.stdout)["monitors"] if m["pid"] == w.pid]
        assert mine and mine[0]["alive"] and mine[0]["kind"] == "watch"
        assert "drops" in mine[0] and mine[0]["scope"] == ["host"]
    finally:
        w.terminate()
        w.communicate(timeout=30)
    res = subprocess.run(CLI + ["status", "--json"], capture_output=True, timeout=30)
    assert not [m for m in orjson.loads(res.stdout)["monitors"] if m["pid"] == w.pid]
