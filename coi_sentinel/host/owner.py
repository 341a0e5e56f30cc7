"""Who owns a session: the identity of its keeper (or headless ``run``) process.

A token ``<boot id>:<pid>:<start time>`` is written into the container's config when the
session starts; :func:`keeper_alive` tells whether that very process still runs (a reused pid
has another start time, a reboot another boot id).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import status as status_mod


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def start_time(pid: int) -> str | None:
    """None for a process that is gone, a zombie or exiting (see :func:`status.start_time`):
    a keeper killed with SIGKILL is an orphan at once, not seconds later while it exits."""
    return status_mod.start_time(pid)


def keeper_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{start_time(pid)}"


def keeper_alive(token: str | None) -> bool:
    if not token:
        return False
    try:
        boot, pid, start = token.split(":")
        return boot == _boot_id() and start_time(int(pid)) == start
    except ValueError:
        return False
