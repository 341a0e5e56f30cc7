"""A session's paused state as the host keeps it: the cgroup2 freezer of its container, and
why, in the container's Incus config.

The truth is the kernel's: a session is paused when ``cgroup.freeze`` of its container's
cgroup2 directory (``lxc.payload.<name>``) reads 1. Incus does not see that freezer on a hybrid
cgroup host (its own ``pause`` goes through the v1 freezer and takes about a second), so it
still reports such a container as Running; :func:`effective_status` turns that into "Frozen"
for ``list``, ``shutdown`` and ``clean``. Whoever freezes a session (the daemon's responder, the
guardian) writes why into the container's config key ``user.coi.paused`` (JSON) after the
freeze (:func:`mark`); a resume removes it (:func:`clear`). Reading and writing this state is
all this module does: whether a session may be resumed is the supervision's call
(:mod:`coi_sentinel.supervision.paused`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ScopeError
from . import freezer, incus
from .cgroups import container_cgroup

KEY_PAUSED = "user.coi.paused"


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
