"""Failure paths of a session (issue 17), with real containers: the first run in a root-owned
folder, a command that does not exist, SIGHUP, and kill -9 of `run` seen at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.incus


def _scope(env, name: str) -> dict | None:
    """The daemon's view of session ``name`` (`status --json`), or None."""
    r = env.run("status", "--json")
    assert r.code == 0, r.err
    daemon = json.loads(r.out)["daemon"] or {}
    return next((sc for sc in daemon.get("scopes", []) if sc["name"] == name), None)


def _wait_scope(env, name: str, state: str, timeout: float = 30) -> float:
    """Seconds until the daemon shows session ``name`` in ``state``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        sc = _scope(env, name)
        if sc is not None and sc["state"] == state:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"{name} is not {state} in status: {_scope(env, name)}")


def test_first_run_in_a_root_owned_folder_uses_an_unprivileged_uid(env):
    """README's first command: `run` as root in the folder root cloned."""
    os.chown(env.ws, 0, 0)
    (env.ws / "README").write_text("cloned\n")
    os.chown(env.ws / "README", 0, 0)
    tool = env.ws / ".venv/bin/coi-sentinel"            # what README then runs as root
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    r = env.run("run", "--", "sh", "-c", "echo more >> README && touch by-agent && id -u; "
                "echo evil >> .venv/bin/coi-sentinel 2>/dev/null; echo venv-write=$?")
    assert r.code == 0, r.err
    assert r.out.split() == ["1000", "venv-write=1"]
    assert tool.read_text() == "#!/bin/sh\n"
    m = re.search(r"coi-sentinel: \S+ is owned by root: the agent writes there as host uid "
                  r"(\d+) \(unprivileged; access by ACL", r.err)
    assert m, r.err
    host_uid = int(m.group(1))
    assert host_uid >= 100000                           # never root, never a user of the host
    assert (env.ws / "by-agent").stat().st_uid == host_uid
    assert (env.ws / "README").stat().st_uid == 0 and (env.ws / "README").read_text() == "cloned\nmore\n"
    assert env.containers() == []


def test_a_missing_command_is_said_not_only_exit_127(env):
    r = env.run("run", "--", "/nonexistent")
    assert r.code == 127
    assert re.search(r"^coi-sentinel: /nonexistent: command not found in coi-\w+-1$", r.err, re.M), r.err
    assert "Traceback" not in r.err
    assert env.containers() == []


def test_sighup_ends_a_headless_run_with_its_clean_up(env):
    p = env.popen("run", "--", "sh", "-c", "echo started; exec sleep 300")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
        assert p.stdout.readline() == "started\n"      # the agent runs: start-up is over
        p.send_signal(signal.SIGHUP)
        code = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read()
    assert code == 4, err
    assert f"coi-sentinel: SIGHUP: session {s['name']} ended, state saved" in err
    assert "Traceback" not in err
    assert env.containers() == []
    assert env.remove_policies() == []          # its nft table went with it


def test_kill_9_of_run_is_seen_at_once_by_status_and_clean(env):
    env.config(image="coi/busybox", monitoring=True)
    p = env.popen("run", "--", "sleep", "300")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
        _wait_scope(env, s["name"], "running")
        p.send_signal(signal.SIGKILL)           # not reaped: a zombie, or still exiting
        [listed] = env.sessions()
        assert listed["orphan"] is True         # at once: its owner is exiting or a zombie
        assert _wait_scope(env, s["name"], "orphan", timeout=10) < 5
        r = env.run("clean", "--orphans", "-w", str(env.ws))
        assert r.code == 0, r.err
        assert f"removed {s['name']} (orphan: its keeper is gone)" in r.out
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        env.run("clean", "--orphans", "-w", str(env.ws))
    assert env.containers() == []


def test_attach_to_a_frozen_orphan_points_to_kill_not_resume(env):
    env.config(image="coi/busybox", monitoring=True)
    p = env.popen("run", "--", "sleep", "300")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
        _wait_scope(env, s["name"], "running")  # the daemon, and so the guardian, watches it
        p.send_signal(signal.SIGKILL)
        p.wait()
        env.wait_sessions(1, state="Frozen", timeout=30)       # the guardian froze it
        r = env.run("attach", s["name"])
        assert r.code == 1
        assert r.err.count("\n") == 1 and "Traceback" not in r.err
        assert "cannot be resumed" in r.err and f"coi-sentinel kill {s['name']}" in r.err
        assert "resume-session" not in r.err
        r = env.run("resume-session", s["name"])              # and indeed it refuses
        assert r.code == 1 and "stays paused" in r.err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        env.run("clean", "--orphans", "-w", str(env.ws))
    assert env.containers() == []
