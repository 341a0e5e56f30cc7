"""`coi-sentinel top` in tmux (send-keys / capture-pane) against the live daemon watching a
live session: the view shows the session, then an alert within 2 s of it firing, then the
frozen state after the pause key (and running again after the resume key).

The session runs busybox in `open` mode but sends nothing anywhere; the alert is a read of an
SSH key the agent made itself (by the script's own shell, which lives on: the process tree
marks it), recorded only (high = "alert").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from browser import terminal_png
from incus_support import BUSYBOX, stop_daemon
from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

SCRIPT = """
mkdir -p ~/.ssh && echo KEY > ~/.ssh/id_rsa
while [ ! -e /workspace/go ]; do sleep 0.05; done
read key < ~/.ssh/id_rsa
while [ ! -e /workspace/stop ]; do echo x >> /workspace/ticks; sleep 0.05; done
echo done
"""


@pytest.fixture
def own_daemon(env):
    """``env`` whose monitored runs use a daemon of this test's own (the first run starts it,
    as a user's first run does), stopped and its files removed at the end."""
    require_bpf()
    env.socket = Path(f"/run/coi-sentinel/test-viewer-{os.urandom(3).hex()}.sock")
    yield env
    stop_daemon(env.socket)             # and its state directory and log
    env.socket.unlink(missing_ok=True)


class Tmux:
    """A tmux server of its own (its socket in the test's directory), one 80x24 window."""

    def __init__(self, sock: Path, env: dict[str, str], argv: list[str]) -> None:
        self.base = [shutil.which("tmux") or pytest.skip("needs tmux (scripts/setup.sh)"), "-S", str(sock)]
        env = {**env, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        # the window stays when top exits, so a failure shows its message
        subprocess.run(self.base + ["new-session", "-d", "-x", "80", "-y", "24", "-s", "top",
                                    " ".join(_quote(a) for a in argv), ";",
                                    "set-option", "-t", "top", "remain-on-exit", "on"],
                       check=True, env=env, timeout=10)

    def screen(self, colours: bool = False) -> str:
        return subprocess.run(self.base + ["capture-pane", "-p", "-t", "top"] + (["-e"] if colours else []),
                              capture_output=True, text=True, timeout=10).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(self.base + ["send-keys", "-t", "top", *keys], check=True, timeout=10)

    def wait(self, what: str, check, timeout: float, step: float = 0.02) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"top did not show {what} within {timeout} s:\n{text}")
            time.sleep(step)

    def close(self) -> None:
        subprocess.run(self.base + ["kill-server"], capture_output=True, timeout=10)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def wait_registered(sock: Path, name: str, timeout: float = 60) -> None:
    """Until the daemon (started by the first monitored run) watches ``name``."""
    from coi_sentinel.daemon.client import DaemonClient
    from coi_sentinel.errors import SentinelError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with DaemonClient.connect(sock, timeout=5) as c:
                if name in [s["name"] for s in c.request("status")["scopes"]]:
                    return
        except SentinelError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the daemon on {sock} does not watch {name} after {timeout} s")


def row(screen: str, name: str) -> list[str]:
    for line in screen.splitlines():
        if line[1:].startswith(name):
            return line[1:].split()
    return []


def test_top_shows_a_live_session_its_alert_and_the_pause(own_daemon, tmp_path):
    env = own_daemon
    from coi_sentinel.host.cgroups import cgroup2_mount
    from coi_sentinel.host import naming

    (env.home / ".config/coi-sentinel/config.toml").write_text(
        f'image = "{BUSYBOX}"\nmonitoring = true\nnetwork = "open"\n[response]\nhigh = "alert"\n')
    name = naming.container_name("coi", env.ws, 1)
    run = env.popen("run", "--", "sh", "-c", SCRIPT)
    tmux = None
    try:
        env.wait_sessions(1, procs=(run,))
        wait_registered(env.socket, name)
        tmux = Tmux(tmp_path / "tmux.sock", env.env, env.argv("top", "--socket", str(env.socket),
                                                               "--interval", "0.5"))
        # 1. the session, running
        screen = tmux.wait("the session", lambda s: row(s, name)[1:2] == ["running"], 30)
        assert "coi-sentinel top" in screen and "SESSION" in screen
        assert all(len(line) <= 80 for line in screen.splitlines())
        once = env.run("top", "--once", "--json", "--interval", "0.2", "--socket", str(env.socket))
        assert once.code == 0, once.err
        [scope] = [s for s in json.loads(once.out)["scopes"] if s["name"] == name]
        assert (scope["state"], scope["tool"], scope["network"]) == ("running", "shell", "open")
        assert scope["memory"] > 0 and scope["events"] > 0
        # the filter: a text no session has, then cleared
        tmux.keys("/")
        tmux.keys("-l", "zzz")
        tmux.keys("Enter")
        tmux.wait("the filter", lambda s: "no session matches the filter" in s, 5)
        tmux.keys("/")
        tmux.keys("Escape")
        tmux.wait("the session again", lambda s: row(s, name)[1:2] == ["running"], 5)
        # 2. the alert, within 2 s of the read that fires it
        (env.ws / "go").touch()
        fired = time.monotonic()
        screen = tmux.wait("the alert", lambda s: "ssh_private_key_read" in s, 5)
        shown = time.monotonic() - fired
        assert shown < 2.0, f"the alert showed {shown:.2f} s after it fired"
        assert "HIGH" in screen and name in screen.split("LAST ALERTS", 1)[1]
        # the session's process tree: the agent's shell, then back
        tmux.keys("Enter")
        tree = tmux.wait("the process tree", lambda s: f"processes of {name}" in s and "sh -c" in s, 5)
        assert "!! ssh_private_key_read" in tree, tree
        tmux.keys("Escape")
        tmux.wait("the list again", lambda s: row(s, name)[:1] == [name], 5)
        # 3. pause: a confirmation, then frozen (the container's freezer says so too)
        tmux.keys("p")
        tmux.wait("the confirmation", lambda s: f"Pause {name}?" in s, 5)
        tmux.keys("y")
        screen = tmux.wait("the frozen state", lambda s: row(s, name)[1:2] == ["frozen"], 5)
        freeze = cgroup2_mount() / f"lxc.payload.{name}" / "cgroup.freeze"
        assert freeze.read_text().strip() == "1"
        png = terminal_png(tmux.screen(colours=True), tmp_path / "top.png", tmp_path / "chromium",
                           title="coi-sentinel top")
        if os.environ.get("COI_SENTINEL_DOCS_IMG"):        # refresh README's picture
            shutil.copy(png, os.environ["COI_SENTINEL_DOCS_IMG"])
        # 4. resume, the same way; then the session ends by itself
        tmux.keys("r")
        tmux.wait("the confirmation", lambda s: f"Resume {name}?" in s, 5)
        tmux.keys("y")
        tmux.wait("the running state", lambda s: row(s, name)[1:2] == ["running"], 5)
        assert freeze.read_text().strip() == "0"
        tmux.keys("q")
        (env.ws / "stop").touch()
        assert run.wait(timeout=60) == 0, run.stderr.read()
    finally:
        if tmux is not None:
            tmux.close()
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "done" in run.stdout.read()
