"""Interactive sessions, driven as a person would: `coi-sentinel run` in a terminal (a tmux on
the host with its own server and prefix C-a, so C-b reaches the session's tmux)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from coi_sentinel.host import status
from support import require_tool

pytestmark = pytest.mark.incus


class HostTerminal:
    def __init__(self, env) -> None:
        require_tool("tmux")
        self.sock = f"coi-test-{uuid.uuid4().hex[:8]}"
        self.env = env

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], check=True, capture_output=True,
                              text=True).stdout

    def start(self, window: str, *cli: str) -> None:
        cmd = " ".join(self.env.argv(*cli)) + "; echo EXIT-$?; sleep 600"
        first = not self.windows()
        args = ["new-session", "-d", "-s", "t", "-x", "100", "-y", "30"] if first else ["new-window", "-t", "t"]
        self.tmux("-f", "/dev/null", *args, "-n", window, "-c", str(self.env.ws),
                  "-e", f"HOME={self.env.home}", "-e", "TERM=xterm-256color",
                  "-e", f"COI_SENTINEL_SOCKET={self.env.socket}", cmd)
        if first:
            self.tmux("set-option", "-g", "prefix", "C-a")

    def windows(self) -> list[str]:
        try:
            return self.tmux("list-windows", "-a", "-F", "#W").split()
        except subprocess.CalledProcessError:
            return []

    def screen(self, window: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", f"t:{window}")

    def keys(self, window: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", f"t:{window}", *keys)

    def wait_for(self, window: str, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen(window)
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear:\n{self.screen(window)}\n"
                             f"sessions: {self.env.sessions()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
        sock = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.sock
        sock.unlink(missing_ok=True)     # a killed server can leave its socket file


@pytest.fixture
def term(env):
    t = HostTerminal(env)
    yield t
    t.close()


def test_run_attach_detach_attach_exit(env, term):
    term.start("run", "run")
    term.wait_for("run", "/workspace $")
    term.keys("run", 'echo "uid=$(id -u) in=$COI_SESSION tty=$(tty)"', "Enter")
    [s] = env.wait_sessions(1)
    term.wait_for("run", f"uid=1000 in={s['name']} tty=/dev/pts/")
    term.keys("run", "C-b", "d")                       # detach from the session's tmux
    term.wait_for("run", "EXIT-0")
    [s] = env.sessions()
    assert s["state"] == "Running" and not s["orphan"]   # its keeper still owns it
    term.start("attach", "attach")
    term.wait_for("attach", "/workspace $")
    term.keys("attach", "echo back-again", "Enter")
    term.wait_for("attach", "back-again\n")
    term.keys("attach", "exit", "Enter")               # the agent ends: the session ends
    term.wait_for("attach", "EXIT-0")
    deadline = time.monotonic() + 30
    while env.containers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert env.containers() == []
    # the keeper goes on after the container is deleted (policy, daemon, audit), then exits;
    # it removes its log only when it ended cleanly
    logs = env.home / ".local/state/coi-sentinel/logs"
    keepers = [int(p.stem.split("-")[1]) for p in logs.glob("keeper-*.log")] if logs.exists() else []
    deadline = time.monotonic() + 30
    while any(status.alive(pid) for pid in keepers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not logs.exists() or list(logs.iterdir()) == []   # keeper ended cleanly


def test_detached_session_shutdown_through_its_keeper(env):
    r = env.run("run", "--detach")
    assert r.code == 0, r.err
    assert "started; attach with" in r.out
    [s] = env.wait_sessions(1)
    assert s["mode"] == "interactive" and not s["orphan"]
    r = env.run("shutdown", s["name"])
    assert r.code == 0 and "shut down by its keeper" in r.out, (r.out, r.err)
    assert env.containers() == []


def test_ctrl_c_while_the_keeper_starts_leaves_nothing(env):
    import signal

    p = env.popen("run", "--detach")
    deadline = time.monotonic() + 60
    while not env.containers() and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)           # to `run`; the keeper (own session) gets SIGTERM
    assert p.wait(timeout=60) == 130
    deadline = time.monotonic() + 30
    while env.containers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert env.containers() == []


def test_readme_first_run_as_root_in_a_root_owned_folder_reaches_a_prompt(env, term):
    """README: `scripts/setup.sh && .venv/bin/coi-sentinel run`, as root, in the folder root
    cloned: the default profile, image and monitoring, attached in tmux (issue 17)."""
    from incus_support import DEBIAN, require_incus

    require_incus(DEBIAN)
    os.chown(env.ws, 0, 0)
    env.config()                                   # the defaults, as on a fresh machine
    term.start("run", "run")
    term.wait_for("run", "/workspace", timeout=120)
    term.keys("run", "touch by-agent; echo made-$?-$(id -u)", "Enter")
    term.wait_for("run", "made-0-1000")
    term.keys("run", "exit", "Enter")
    term.wait_for("run", "EXIT-0", timeout=60)
    owner = (env.ws / "by-agent").stat().st_uid
    assert owner not in (0, 1000) and owner >= 100000      # an unprivileged uid of Incus' range
    deadline = time.monotonic() + 30
    while env.containers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert env.containers() == []
