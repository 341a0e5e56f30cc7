"""The keeper of an interactive session: a process of its own that outlives the terminal.

``run`` (without a command) forks; the child calls :func:`setsid`, starts the session (the
container, then the monitor, before the agent), starts the agent in tmux, reports ``ok NAME``
on a pipe, and then waits for the tmux session to end to save the state, stop the monitor and
stop the container. The parent only attaches the user's terminal, so detaching (or closing the
terminal) leaves the session running and monitored. ``coi-sentinel shutdown`` sends the keeper
SIGTERM, which ends the session the same way. The keeper logs to
``~/.local/state/coi-sentinel/logs/keeper-<pid>.log`` (removed when it ends cleanly).

The keeper owns the monitor, so the monitor's guardian watches the keeper: a keeper killed
with SIGKILL leaves its session frozen, not running unwatched. An attached terminal shows each
action of the monitor (one block, :mod:`coi_sentinel.audit.notices`) by following the session's audit log; a
paused session cannot be attached to (its tmux is frozen) until it is resumed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

from ..errors import SentinelError, SessionError
from ..host import incus, paths
from ..audit import notices
from ..host import pause_state as paused
from . import terminal
from .session import (KEY, TMUX_SESSION, PATH_ENV, SessionSpec, StopRequested, agent_home,
                      keeper_alive,
                      on_sigterm_stop)

log = logging.getLogger(__name__)


def _read_lines(fd: int) -> list[str]:
    """Every line the keeper reports: ``note TEXT`` lines, then ``ok NAME`` or a JSON error;
    it closes the pipe after the last."""
    buf = b""
    while chunk := os.read(fd, 4096):
        buf += chunk
    return buf.decode(errors="replace").strip().splitlines() or [""]


def spawn(spec: SessionSpec, *, term: str, width: int, height: int,
          notices: list[str] | None = None) -> str:
    """Start the session in a keeper process; return the container name once the agent runs.
    What the session says to its starter (:attr:`Session.notices`) is added to ``notices``."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 1
        try:
            code = _keeper(spec, w, term, width, height)
        finally:
            os._exit(code)
    os.close(w)
    try:
        lines = _read_lines(r)
        line = lines[-1]
        if notices is not None:
            notices.extend(x[5:] for x in lines[:-1] if x.startswith("note "))
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGTERM)     # the keeper undoes its start-up
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    if line.startswith("ok "):
        return line[3:]
    os.waitpid(pid, 0)
    try:
        err = json.loads(line)
    except ValueError:
        raise SessionError("the session keeper exited during start-up "
                           f"(see {paths.state_dir() / 'logs'})") from None
    raise SessionError(err.get("error", "start-up failed"), hint=err.get("hint"))


def _report(fd: int, text: str) -> None:
    os.write(fd, (text + "\n").encode())
    os.close(fd)


def _keeper(spec: SessionSpec, fd: int, term: str, width: int, height: int) -> int:
    os.setsid()
    logs = paths.private_dir(paths.state_dir() / "logs")
    log_path = logs / f"keeper-{os.getpid()}.log"
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    on_sigterm_stop()
    from ..supervision.monitor import default_factory
    from .session import SessionManager

    try:
        factory = default_factory(spec.config, notify=lambda text: log.warning("%s", text))
        session = SessionManager(monitor_factory=factory).start(spec)
    except (StopRequested, KeyboardInterrupt):
        _report(fd, json.dumps({"error": "start-up interrupted"}))
        return 1
    except SentinelError as err:
        _report(fd, json.dumps({"error": str(err), "hint": err.hint}))
        return 1
    except BaseException as err:
        log.exception("start-up failed")
        _report(fd, json.dumps({"error": f"start-up failed: {err}"}))
        return 1
    clean = True
    try:
        command = list(spec.profile.command)
        if spec.resume is not None:
            command += list(spec.profile.resume_args)
        session.start_tmux(term, width, height, command)
        for text in session.notices:
            os.write(fd, f"note {' '.join(text.split())}\n".encode())
        _report(fd, f"ok {session.name}")
        fd = -1
        session.wait_tmux_end()
    except StopRequested:
        log.info("%s: shutdown requested", session.name)
    except BaseException as err:
        clean = False
        if fd >= 0:
            _report(fd, json.dumps({"error": str(err)}))
        log.exception("%s: session failed", session.name)
        session.abort()
        return 1
    try:
        session.finish()
    except BaseException:
        log.exception("%s: finishing failed", session.name)
        return 1
    if clean:
        try:
            log_path.unlink()
        except OSError:
            pass
    return 0


def attach(name: str, term: str, client=None) -> int:
    """Attach this terminal to the session's tmux (``tmux attach``) until detach or the end."""
    client = client if client is not None else incus.connect()
    inst = incus.raw_get(client, f"instances/{name}")
    cfg = inst.get("config") or {}
    if cfg.get(KEY + "managed") != "true":
        raise SessionError(f"{name} is not a coi-sentinel session")
    if inst.get("status") != "Running":
        raise SessionError(f"session {name} is {inst.get('status', '?').lower()}, not running")
    if paused.is_frozen(name):
        why = (paused.reason_of(cfg) or {}).get("reason")
        if not keeper_alive(cfg.get(KEY + "keeper")):
            # resume-session refuses this one (its agent would run unwatched): do not send
            # the user there
            hint = (f"its monitor is gone, so it cannot be resumed: `coi-sentinel kill {name}`, "
                    f"or `coi-sentinel shutdown {name}` to keep its state")
        else:
            hint = f"resume it with `coi-sentinel resume-session {name}`, or kill it"
        raise SessionError(f"session {name} is paused" + (f": {why}" if why else ""), hint=hint)
    uid = int(cfg.get(KEY + "uid", "1000"))
    home = agent_home(client, name, uid) or "/"
    env = {"TERM": term, "HOME": home, "PATH": PATH_ENV, "LANG": "C.UTF-8"}
    follower = notices.AuditFollower(cfg[KEY + "audit"]) if cfg.get(KEY + "audit") else None
    return terminal.attach(client, name, ["tmux", "attach-session", "-t", TMUX_SESSION],
                           environment=env, uid=uid, gid=uid, cwd=cfg.get(KEY + "mount", "/"),
                           notices=follower)
