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


def status_path(pid: int | None = None) -> Path:
    return STATUS_DIR / f"{pid or os.getpid()}.json"


def publish(data: dict[str, Any]) -> None:
    """Atomically replace this process's status file. Failures are logged, never raised: status
    is a convenience, monitoring goes on without it."""
    try:
        STATUS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=STATUS_DIR, prefix=".status-")
        with os.fdopen(fd, "w") as f:
            json.dump({**data, "pid": os.getpid(), "updated": time.time()}, f)
        os.replace(tmp, status_path())
    except OSError as err:
        log.debug("status file not written: %s", err)


def withdraw() -> None:
    try:
        status_path().unlink()
    except OSError:
        pass


def read_all() -> list[dict[str, Any]]:
    """Every status file, with ``alive`` (the process still exists) and ``age`` in seconds."""
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
        pid = int(data.get("pid", path.stem))
        data["alive"] = os.path.exists(f"/proc/{pid}")
        data["age"] = round(now - float(data.get("updated", 0)), 1)
        data["file"] = str(path)
        out.append(data)
    return out
