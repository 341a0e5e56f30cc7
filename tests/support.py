"""Shared test helpers (importable as `support`: tests/ is on pythonpath): tier skips that
name what is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def bpf_missing() -> str | None:
    """Why the bpf tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "bpf tier needs root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bpf tier needs the bcc python module (python3-bpfcc; run scripts/setup.sh)"
    if not os.path.isdir("/sys/kernel/tracing/events"):
        return "bpf tier needs tracefs at /sys/kernel/tracing"
    if not os.path.exists(f"/lib/modules/{os.uname().release}/build"):
        return "bpf tier needs kernel headers at /lib/modules/$(uname -r)/build"
    return None


def require_bpf() -> None:
    why = bpf_missing()
    if why:
        pytest.skip(why)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs the {name} command")
    return path


def status_files() -> set:
    """The monitors' status files present now (coi_sentinel.host.status)."""
    from coi_sentinel.host import status

    try:
        return set(status.STATUS_DIR.glob("*.json"))
    except OSError:
        return set()


def remove_dead_status_files(before: set) -> None:
    """Tests kill monitors with SIGKILL on purpose, and a killed monitor leaves its status file
    (status reports it as dead): remove those the tests made, never one that was there before."""
    from coi_sentinel.host import status

    for m in status.read_all():
        path = Path(m["file"])
        if not m["alive"] and path not in before:
            path.unlink(missing_ok=True)
