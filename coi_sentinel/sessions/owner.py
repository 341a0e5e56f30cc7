"""Who owns a session: the identity of its keeper (or headless ``run``) process.

A token ``<boot id>:<pid>:<start time>`` is written into the container's config when the
session starts; :func:`keeper_alive` tells whether that very process still runs (a reused pid
has another start time, a reboot another boot id).
"""

from __future__ import annotations

import os
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def _start_time(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()[19]


def keeper_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{_start_time(pid)}"


def keeper_alive(token: str | None) -> bool:
    if not token:
        return False
    try:
        boot, pid, start = token.split(":")
        return boot == _boot_id() and _start_time(int(pid)) == start
    except ValueError:
        return False
