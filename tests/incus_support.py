"""Helpers of the incus tier (tests/incus): the real Incus daemon, real containers, the real `coi-sentinel` command.

Each test gets its own workspace folder (so its own container names: the name hashes the
workspace) and its own fake home (config, profiles, saved state, audit logs), so tests run in
parallel. Teardown deletes whatever container of that workspace is still there and fails the
test if the code under test left one behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BUSYBOX = "coi/busybox"
DEBIAN = "coi/debian12"
PROFILE = "coi-sentinel"
AGENT_UID = 1000


def incus_missing(image: str = BUSYBOX) -> str | None:
    """Why the incus tier cannot run here (naming what is missing), or None."""
    if os.geteuid() != 0:
        return "incus tier needs root"
    try:
        from coi_sentinel.host import incus
    except ImportError as err:  # pragma: no cover - the package itself is broken
        return f"coi_sentinel.sessions does not import: {err}"
    from coi_sentinel.errors import IncusError, SessionError

    try:
        client = incus.connect()
    except SessionError as err:
        return f"incus tier: {err}" + (f" ({err.hint})" if err.hint else "")
    for what, path in (("image", f"images/aliases/{image}"), ("profile", f"profiles/{PROFILE}")):
        try:
            incus.raw_get(client, path)
        except IncusError:
            return f"incus tier: {what} {path.split('/', 2)[-1]} is missing (run scripts/setup-incus.sh)"
    return None


def require_incus(image: str = BUSYBOX) -> None:
    why = incus_missing(image)
    if why:
        pytest.skip(why)


@dataclass
class Result:
    code: int
    out: str
    err: str


def worker_socket() -> Path:
    """The daemon socket of this pytest worker: the first monitored `run` starts a daemon on
    it (as a user's first run does); the tier's session fixture stops it at the end."""
    return Path(f"/run/coi-sentinel/test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}.sock")


def daemon_pid(sock: Path) -> int | None:
    from coi_sentinel.daemon.protocol import state_dir_of

    try:
        pid = int((state_dir_of(sock) / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if os.path.exists(f"/proc/{pid}") else None


def stop_daemon(sock: Path, timeout: float = 20.0) -> int | None:
    """SIGTERM the daemon serving ``sock`` and wait for it to exit; its pid, or None."""
    import signal
    import time

    from coi_sentinel.daemon.protocol import state_dir_of

    try:
        pid = int((state_dir_of(sock) / "daemon.pid").read_text())
    except (OSError, ValueError):
        forget_daemon(sock)
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        forget_daemon(sock)
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    forget_daemon(sock)
    return pid


def forget_daemon(sock: Path) -> None:
    """A stopped test daemon's state directory and log: nothing left behind."""
    import shutil

    from coi_sentinel.daemon.protocol import state_dir_of

    shutil.rmtree(state_dir_of(sock), ignore_errors=True)
    Path(str(sock) + ".log").unlink(missing_ok=True)
    Path(sock).unlink(missing_ok=True)          # a killed daemon's socket


class Env:
    """A workspace, a fake HOME and a way to run the CLI with them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = root / "ws"
        self.ws.mkdir()
        os.chown(self.ws, AGENT_UID, AGENT_UID)
        self.home = root / "home"
        (self.home / ".config/coi-sentinel/sessions").mkdir(parents=True)
        self.config(image=BUSYBOX, monitoring=False)
        #: the daemon its monitored runs use (and start when none answers)
        self.socket = worker_socket()

    def config(self, **values) -> None:
        lines = []
        for k, v in values.items():
            lines.append(f"{k} = {json.dumps(v)}")
        (self.home / ".config/coi-sentinel/config.toml").write_text("\n".join(lines) + "\n")

    def profile(self, name: str, text: str) -> None:
        (self.home / f".config/coi-sentinel/sessions/{name}.yaml").write_text(text)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "COI_SENTINEL"))}
        env["COI_SENTINEL_SOCKET"] = str(self.socket)
        env["HOME"] = str(self.home)
        env.pop("TERM", None)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "coi_sentinel.cli.main", *args]

    def run(self, *args: str, timeout: float = 120, cwd: Path | None = None) -> Result:
        p = subprocess.run(self.argv(*args), cwd=cwd or self.ws, env=self.env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), cwd=self.ws, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)

    def sessions(self) -> list[dict]:
        r = self.run("list", "--json")
        assert r.code == 0, r.err
        return [s for s in json.loads(r.out) if s["workspace"] == os.path.realpath(self.ws)]

    def wait_sessions(self, n: int, state: str = "Running", timeout: float = 60,
                      procs: tuple[subprocess.Popen, ...] = ()) -> list[dict]:
        """Wait for ``n`` sessions of this workspace in ``state``; a `run` of ``procs`` that
        ends meanwhile fails the wait with its stderr."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"run exited {p.returncode}: {p.stderr.read()}")
            found = [s for s in self.sessions() if s["state"] == state]
            if len(found) >= n:
                return found
            time.sleep(0.2)
        raise AssertionError(f"{n} {state} session(s) did not appear: {self.sessions()}")

    def remove_policies(self) -> list[str]:
        """Remove the network policies (table inet coi_sentinel) of this workspace's sessions
        that are still there; return their names. Nothing without nftables."""
        from coi_sentinel.errors import NetworkError
        from coi_sentinel.network import Firewall
        from coi_sentinel.host import naming

        try:
            fw = Firewall()
        except NetworkError:
            return []
        ours = naming.workspace_hash(self.ws)
        stale = [s["session"] for s in fw.sessions()
                 if (parsed := naming.parse_name(s["session"])) is not None and parsed.hash8 == ours]
        for name in stale:
            fw.remove(name)
        return stale

    def containers(self) -> list[str]:
        """Every container of this workspace, managed or not, straight from the API."""
        from coi_sentinel.host import incus, naming

        h = naming.workspace_hash(self.ws)
        client = incus.connect()
        return [i["name"] for i in incus.raw_get(client, "instances", recursion=1)
                if f"-{h}-" in i["name"]]


