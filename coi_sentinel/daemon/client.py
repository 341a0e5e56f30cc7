"""Talking to the daemon: requests, subscriptions, and starting one when none runs.

    with DaemonClient.connect() as c:
        print(c.request("status")["scopes"])
        for item in c.subscribe(["coi-1a2b3c4d-1"], ["alerts"]):
            ...
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from . import protocol as P

log = logging.getLogger(__name__)

#: how long `ensure_daemon` waits for a daemon it started (probes compile in ~3-6 s)
START_TIMEOUT = 60.0


class DaemonClient:
    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self._file = sock.makefile("rb")
        self._ids = itertools.count(1)

    @classmethod
    def connect(cls, path: str | os.PathLike[str] | None = None, *, timeout: float | None = 30.0) -> "DaemonClient":
        p = P.socket_path(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.settimeout(timeout)
        try:
            s.connect(str(p))
        except FileNotFoundError:
            s.close()
            raise P.DaemonUnavailable(str(p), "no socket") from None
        except ConnectionRefusedError:
            s.close()
            raise P.DaemonUnavailable(str(p), "nothing listens (a daemon died?)") from None
        except PermissionError:
            s.close()
            raise P.DaemonError(f"{p}: permission denied", code=P.DENIED,
                                hint=f"join the daemon's group ({P.DEFAULT_GROUP} by default) "
                                     "or use sudo") from None
        except OSError as err:
            s.close()
            raise P.DaemonUnavailable(str(p), err.strerror or str(err)) from None
        return cls(s, p)

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its answer's fields; DaemonError when it failed."""
        rid = next(self._ids)
        try:
            self.sock.sendall(P.encode({"op": op, "id": rid, **fields}))
            line = self._file.readline()
        except (OSError, ValueError) as err:
            raise P.DaemonUnavailable(str(self.path), f"the connection broke ({err})") from None
        if not line:
            raise P.DaemonUnavailable(str(self.path), "the daemon closed the connection")
        reply = P.decode(line)
        if not reply.get("ok"):
            raise P.DaemonError(reply.get("error", "failed"), code=reply.get("code", P.INTERNAL))
        reply.pop("ok", None)
        reply.pop("id", None)
        return reply

    def subscribe(self, scopes: list[str] | None = None,
                  what: tuple[str, ...] = ("alerts", "actions")) -> Iterator[dict[str, Any]]:
        """Stream items (``{"stream", "scope", "data"}``) until the daemon goes away."""
        self.sock.settimeout(None)
        self.request("subscribe", scopes=scopes, what=list(what))   # sent and answered now
        return self._items()

    def _items(self) -> Iterator[dict[str, Any]]:
        for line in self._file:
            yield P.decode(line)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self.sock.close()

    def __enter__(self) -> "DaemonClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def running(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The daemon's ``hello`` when one answers, else None."""
    try:
        with DaemonClient.connect(path, timeout=5) as c:
            return c.request("hello")
    except P.DaemonUnavailable:
        return None


def ensure_daemon(path: str | os.PathLike[str] | None = None, *, say=None) -> dict[str, Any]:
    """A daemon on ``path``; starts one (detached, as this process's user, so root) when none
    answers, and says so through ``say``."""
    hello = running(path)
    if hello is not None:
        return hello
    if os.geteuid() != 0:
        raise P.DaemonUnavailable(str(P.socket_path(path)), "none runs and only root may start one")
    p = P.socket_path(path)
    if say is not None:
        say(f"no coi-sentinel daemon on {p}: starting one (sudo coi-sentinel daemon --detach)")
    start_detached(p)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        hello = running(p)
        if hello is not None:
            return hello
        time.sleep(0.1)
    raise P.DaemonUnavailable(str(p), f"the daemon did not answer within {START_TIMEOUT:g} s "
                                      f"(see {log_path(p)})")


def log_path(sock: Path) -> Path:
    return Path(str(sock) + ".log")


def start_detached(sock: Path, extra: list[str] | None = None) -> int:
    """Start ``coi-sentinel daemon`` in its own session, its output in ``<socket>.log``."""
    sock.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "coi_sentinel.cli.main", "daemon", "--socket", str(sock),
            *(extra or [])]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
    with open(log_path(sock), "ab", buffering=0) as logf:
        os.chmod(log_path(sock), 0o600)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, env=env, cwd="/", close_fds=True)
    return proc.pid
