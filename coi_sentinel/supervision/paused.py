"""Resuming a paused session, and when it may be.

What "paused" is (the cgroup2 freezer of the container, and why in ``user.coi.paused``) is
the host's, read and written by :mod:`coi_sentinel.host.pause_state`; :func:`resume` decides
whether a session may run again, then has the daemon thaw it and removes the key.

A session stays paused until ``coi-sentinel resume-session NAME`` or until it is killed.
Resuming needs a live monitor: a session whose monitor died (the guardian paused it) cannot be
resumed, since its agent would then run unwatched; kill it, or shut it down to keep its state.
"""

from __future__ import annotations

import errno
import logging
import os
import time

from ..errors import IncusError, SessionError
from ..host import freezer, incus
from ..host.owner import keeper_alive
from ..host.pause_state import cgroup_or_none, clear, reason_of

log = logging.getLogger(__name__)

#: how fresh the status file of a session's monitor must be for `resume-session` (seconds)
MONITOR_FRESH = 3.0
#: `resume-session` first checks that the audit log's file system takes this much more
AUDIT_ROOM = 1 << 20


def monitor_state(name: str, config: dict[str, str], *, wait: float = MONITOR_FRESH) -> str | None:
    """None when the daemon watches the session and its loop answers, else why not. Waits up
    to ``wait`` seconds for a daemon that is late (one that was restarted re-adopts the
    session as soon as its owner reconnects)."""
    from ..daemon import protocol as P
    from ..daemon.client import DaemonClient

    if not keeper_alive(config.get("user.coi.keeper")):
        return "the process that owned it is gone"
    deadline = time.monotonic() + wait
    while True:
        try:
            with DaemonClient.connect(timeout=wait) as c:
                scopes = {s["name"]: s for s in c.request("status")["scopes"]}
            scope = scopes.get(name)
            if scope is None:
                why = "no daemon watches it"
            elif scope["state"] == "orphan":
                why = "its owner went away; the daemon keeps it paused as an orphan"
            else:
                return None
        except P.DaemonError as err:
            why = f"its monitor is not running ({err})"
        if time.monotonic() >= deadline:
            return why
        time.sleep(0.2)


def audit_room(audit: str | os.PathLike[str], need: int = AUDIT_ROOM) -> str | None:
    """None when the folder of the audit log ``audit`` can take ``need`` more bytes, else why
    not (one clause). Checked with an unnamed file (O_TMPFILE) that vanishes when closed."""
    folder = os.path.dirname(os.fspath(audit)) or "."
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None         # no O_TMPFILE here: the monitor's own retry will tell
        if err.errno == errno.EACCES and os.geteuid() != 0:
            return None         # the daemon's folder of a user's logs: its own retry will tell
        return f"its folder {folder} cannot be written ({err.strerror})"
    try:
        try:
            os.posix_fallocate(fd, 0, need)
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                os.write(fd, bytes(min(need, 1 << 16)))
            else:
                raise
    except OSError as err:
        name = errno.errorcode.get(err.errno or 0, "?")
        return f"the disk of its audit log {os.fspath(audit)} is still full ({name})"
    finally:
        os.close(fd)
    return None


def _resume_in_daemon(name: str) -> None:
    from ..daemon.client import DaemonClient

    with DaemonClient.connect(timeout=10) as c:
        c.request("resume", name=name)


def resume(client, name: str) -> str:
    """Thaw a paused session whose monitor is alive; return what was done, in one line."""
    try:
        inst = incus.raw_get(client, f"instances/{name}")
    except IncusError as err:
        if "not found" in str(err).lower():
            raise SessionError(f"no session named {name!r}", hint="see `coi-sentinel list`") from None
        raise
    config = inst.get("config") or {}
    if config.get("user.coi.managed") != "true":
        raise SessionError(f"{name} is not a coi-sentinel session")
    cg = cgroup_or_none(name)
    if inst.get("status") != "Running" or cg is None:
        raise SessionError(f"session {name} is {inst.get('status', '?').lower()}, not paused")
    if not freezer.is_frozen(cg):
        return f"{name} is not paused"
    why = monitor_state(name, config)
    if why is not None:
        paused = reason_of(config) or {}
        raise SessionError(
            f"{name} stays paused: {why}" + (f" ({paused['reason']})" if paused.get("reason") else "")
            + "; thawed, its agent would run unwatched",
            hint=f"`coi-sentinel kill {name}`, or `coi-sentinel shutdown {name}` to keep its state")
    audit = config.get("user.coi.audit")
    full = audit_room(audit) if audit else None
    if full is not None:
        raise SessionError(f"{name} stays paused: {full}; thawed, its monitor would pause it "
                           "again at once", hint="free space there, then resume it")
    if reason_of(config) is not None:
        # before the thaw: an Incus update running when the agent ends would hold up its stop
        clear(client, name)
    _resume_in_daemon(name)         # thaws, and records the resume in the session's audit log
    return f"{name} resumed"
