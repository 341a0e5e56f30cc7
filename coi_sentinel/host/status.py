"""Live status of the monitors on this host (``watch``, ``record``, session monitors).

Each running :class:`~coi_sentinel.monitor.Monitor` rewrites a small JSON file once a second
under :data:`STATUS_DIR` (scope, coverage, events, drops, kills) and removes it when it closes.
``coi-sentinel status`` reads them; a file whose process is gone is reported as a monitor that
died without cleaning up.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATUS_DIR = Path(os.environ.get("COI_SENTINEL_RUN_DIR", "/run/coi-sentinel")) / "monitors"

#: the kernel's task flag for a task in do_exit (include/linux/sched.h); /proc/PID/stat field 9
PF_EXITING = 0x00000004


def start_time(pid: int) -> str | None:
    """The start time (clock ticks after boot, /proc/PID/stat field 22) of a *living* process,
    None when it is gone, a zombie, or exiting. A process killed with SIGKILL that had loaded
    BPF programs takes seconds to tear down, and its /proc entry stays until it is reaped: both
    are already dead for whoever asks whether the process still watches anything."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = data.rsplit(")", 1)[-1].split()
    try:
        state, flags, start = fields[0], int(fields[6]), fields[19]
    except (IndexError, ValueError):
        return None
    if state in ("Z", "X", "x") or flags & PF_EXITING:
        return None
    return start


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def status_path(pid: int | None = None) -> Path:
    return STATUS_DIR / f"{pid or os.getpid()}.json"


def publish(data: dict[str, Any]) -> None:
    """Atomically replace this process's status file. Failures are logged, never raised: status
    is a convenience, monitoring goes on without it."""
    try:
        STATUS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=STATUS_DIR, prefix=".status-")
        with os.fdopen(fd, "w") as f:
            json.dump({**data, "pid": os.getpid(), "proc_start": start_time(os.getpid()),
                       "updated": time.time()}, f)
        os.replace(tmp, status_path())
    except OSError as err:
        log.debug("status file not written: %s", err)


def withdraw() -> None:
    try:
        status_path().unlink()
    except OSError:
        pass


def read_all() -> list[dict[str, Any]]:
    """Every status file, with ``alive`` (the process exists and is not exiting: a ``run``
    killed with SIGKILL reads as dead at once; a file whose pid now names another process,
    started later, reads as dead too) and ``age`` in seconds."""
    out: list[dict[str, Any]] = []
    try:
        files = sorted(STATUS_DIR.glob("*.json"))
    except OSError:
        return out
    now = time.time()
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        try:
            pid = int(data.get("pid", path.stem))
        except (TypeError, ValueError):
            continue
        started = start_time(pid)
        data["alive"] = started is not None and data.get("proc_start", started) == started
        data["age"] = round(now - float(data.get("updated", 0)), 1)
        data["file"] = str(path)
        out.append(data)
    return out
