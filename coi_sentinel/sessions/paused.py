"""A paused session: frozen by the cgroup2 freezer, with the reason kept by Incus.

The truth is the kernel's: a session is paused when ``cgroup.freeze`` of its container's
cgroup2 directory (``lxc.payload.<name>``) reads 1. Incus does not see that freezer on a hybrid
cgroup host (its own ``pause`` goes through the v1 freezer and takes about a second), so it
still reports such a container as Running; :func:`effective_status` turns that into "Frozen"
for ``list``, ``shutdown`` and ``clean``. Whoever freezes a session (the monitor's responder, the
monitor itself, the guardian) writes why into the container's config key ``user.coi.paused``
(JSON) after the freeze; :func:`resume` thaws it and removes the key.

A session stays paused until ``coi-sentinel resume-session NAME`` or until it is killed.
Resuming needs a live monitor: a session whose monitor died (the guardian paused it) cannot be
resumed, since its agent would then run unwatched; kill it, or shut it down to keep its state.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ..errors import IncusError, ScopeError, SessionError
from ..probes.cgroups import container_cgroup
from ..respond import freezer
from . import incus
from .owner import keeper_alive

log = logging.getLogger(__name__)

KEY_PAUSED = "user.coi.paused"
#: how fresh the status file of a session's monitor must be for `resume-session` (seconds)
MONITOR_FRESH = 3.0


def cgroup_or_none(name: str) -> Path | None:
    try:
        return container_cgroup(name)
    except ScopeError:
        return None


def is_frozen(name: str) -> bool:
    cg = cgroup_or_none(name)
    return cg is not None and freezer.is_frozen(cg)


def effective_status(name: str, incus_status: str) -> str:
    """Incus' status, but "Frozen" for a running container frozen through cgroup2."""
    if incus_status == "Running" and is_frozen(name):
        return "Frozen"
    return incus_status


def reason_of(config: dict[str, str]) -> dict[str, Any] | None:
    """The ``user.coi.paused`` record of an instance's config, if any."""
    text = config.get(KEY_PAUSED)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"reason": text}
    return value if isinstance(value, dict) else {"reason": str(value)}


def mark(client, name: str, info: dict[str, Any]) -> None:
    """Record why ``name`` is paused in its Incus config (after the freeze; best effort for the
    caller, which logs a failure)."""
    body = {"config": {KEY_PAUSED: json.dumps(info, sort_keys=True, default=str)}}
    with incus.api_call(f"mark {name} paused"):
        client.api.instances[name].patch(json=body)


def clear(client, name: str) -> None:
    with incus.api_call(f"mark {name} resumed"):
        client.api.instances[name].patch(json={"config": {KEY_PAUSED: ""}})


def _owner_pid(config: dict[str, str]) -> int | None:
    try:
        return int(config.get("user.coi.keeper", "").split(":")[1])
    except (IndexError, ValueError):
        return None


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
    if reason_of(config) is not None:
        # before the thaw: an Incus update running when the agent ends would hold up its stop
        clear(client, name)
    _resume_in_daemon(name)         # thaws, and records the resume in the session's audit log
    return f"{name} resumed"
