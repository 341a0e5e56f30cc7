"""Who is alive (issue 17): a process killed with SIGKILL is dead for `status` and for
`clean --orphans` at once - while it exits and while it waits to be reaped - not seconds later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from coi_sentinel.host import status
from coi_sentinel.sessions.session import keeper_alive, keeper_token

pytestmark = pytest.mark.unit


def test_a_running_process_is_alive() -> None:
    assert status.alive(os.getpid())
    assert keeper_alive(keeper_token())


def test_a_zombie_is_dead_at_once() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        token = keeper_token(child.pid)
        assert keeper_alive(token)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{child.pid}/stat"):
            with open(f"/proc/{child.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        assert os.path.exists(f"/proc/{child.pid}")        # not reaped: still in /proc
        assert not status.alive(child.pid)
        assert not keeper_alive(token)
    finally:
        child.kill()
        child.wait()


def test_a_gone_or_reused_pid_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert status.start_time(child.pid) is None
    assert not keeper_alive(f"{keeper_token().split(':')[0]}:{os.getpid()}:1")  # other start


def test_status_reads_a_dead_monitor_as_dead(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(status, "STATUS_DIR", tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f"{child.pid}.json").write_text(json.dumps(
            {"pid": child.pid, "kind": "session", "updated": time.time()}))
        (tmp_path / "junk.json").write_text(json.dumps({"pid": "abc"}))
        assert [m["alive"] for m in status.read_all()] == [True]
        child.kill()
        while status.alive(child.pid):
            time.sleep(0.01)
        (entry,) = status.read_all()
        assert entry["alive"] is False and entry["age"] < 5     # DEAD, though fresh
    finally:
        child.kill()
        child.wait()


def test_status_reads_a_reused_pid_as_dead(tmp_path, monkeypatch) -> None:
    """A monitor killed with SIGKILL leaves its file; a later process given the same pid is
    not that monitor."""
    monkeypatch.setattr(status, "STATUS_DIR", tmp_path)
    status.publish({"kind": "watch"})
    (mine,) = status.read_all()
    assert mine["alive"] is True and mine["proc_start"] == status.start_time(os.getpid())
    path = status.status_path()
    path.write_text(json.dumps({**json.loads(path.read_text()), "proc_start": "1"}))
    (entry,) = status.read_all()
    assert entry["alive"] is False


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "x"])
def test_watch_and_record_refuse_a_bad_duration(value: str) -> None:
    for cmd in (["watch"], ["record", "-o", "/nonexistent/x.jsonl"]):
        res = subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", *cmd, "--duration",
                              value], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, (cmd, res.stderr)
        assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"coi-sentinel {cmd[0]}: usage error: ")
        assert f"Invalid value for '--duration': '{value}' is not a number of seconds" in res.stderr
