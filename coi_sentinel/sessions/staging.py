"""Credential staging: the profile's files from the user's home, copied into the container.

Files are read on the host (regular files only, at most :data:`MAX_BYTES`), then written into
the agent's home in the container through the Incus file API with mode 0600 and the agent's
uid/gid; the directories created on the way are 0700. ``merge: json`` files are merged into the
file the container already has (image defaults, or an earlier session of a persistent
container), then the profile's ``settings`` are laid on top: nothing of either side is lost.
Planning (:func:`plan`, :func:`render`) touches no container, so it is unit-tested on its own.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from ..errors import StagingError
from .profiles import Profile

log = logging.getLogger(__name__)

MAX_BYTES = 1 << 20
FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class Staged:
    rel: str                      # relative to the home directory
    data: bytes                   # host content
    merge: str                    # "none" | "json"
    settings: dict[str, Any]


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` laid onto ``base``: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return over


def _read_host_file(path: Path) -> bytes | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StagingError(f"cannot stage {path}: {err.strerror}") from err
    if not stat.S_ISREG(st.st_mode):
        raise StagingError(f"cannot stage {path}: not a regular file")
    if st.st_size > MAX_BYTES:
        raise StagingError(f"cannot stage {path}: larger than {MAX_BYTES} bytes")
    try:
        with open(path, "rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as err:
        raise StagingError(f"cannot stage {path}: {err.strerror}") from err


def plan(profile: Profile, home: Path) -> list[Staged]:
    """The profile's credential files that exist under ``home`` (the host user's home)."""
    out = []
    for cred in profile.credentials:
        data = _read_host_file(home / cred.path)
        if data is None:
            if not cred.optional:
                raise StagingError(f"{profile.name} needs ~/{cred.path}, which does not exist")
            log.debug("not staged (missing on the host): ~/%s", cred.path)
            if cred.settings:          # settings alone still make a file
                out.append(Staged(cred.path, b"{}", cred.merge, cred.settings))
            continue
        if cred.merge == "json":
            _parse_json(data, f"~/{cred.path}")
        out.append(Staged(cred.path, data, cred.merge, cred.settings))
    return out


def _parse_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data) if data.strip() else {}
    except (ValueError, UnicodeDecodeError) as err:
        raise StagingError(f"{where} is not valid JSON: {err}") from err


def render(item: Staged, existing: bytes | None) -> bytes:
    """Bytes to write for ``item``, given what the container already has at that path."""
    if item.merge != "json":
        return item.data
    merged = _parse_json(existing, f"container file ~/{item.rel}") if existing else {}
    merged = deep_merge(merged, _parse_json(item.data, f"~/{item.rel}"))
    merged = deep_merge(merged, item.settings)
    return json.dumps(merged, indent=2).encode() + b"\n"


class FileAPI(Protocol):
    """What staging needs of a container's files (:class:`coi_sentinel.host.incus.InstanceFiles`)."""

    def read(self, path: str) -> bytes | None: ...
    def mkdir(self, path: str, mode: int, uid: int, gid: int) -> None: ...
    def write(self, path: str, data: bytes, mode: int, uid: int, gid: int) -> None: ...


def push(files: FileAPI, staged: list[Staged], home: str, uid: int, gid: int) -> list[str]:
    """Write ``staged`` under ``home`` in the container; returns the container paths written."""
    written = []
    made: set[str] = set()
    for item in staged:
        dest = PurePosixPath(home) / item.rel
        existing = files.read(str(dest)) if item.merge == "json" else None
        data = render(item, existing)
        chain = []
        parent = dest.parent
        while parent != PurePosixPath(home) and str(parent) not in made:
            chain.append(parent)
            parent = parent.parent
        for d in reversed(chain):
            files.mkdir(str(d), DIR_MODE, uid, gid)
            made.add(str(d))
        files.write(str(dest), data, FILE_MODE, uid, gid)
        written.append(str(dest))
    return written
