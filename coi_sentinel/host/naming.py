"""Session names: ``<prefix>-<hash8 of the workspace>-<slot>``.

The hash is of the workspace's real path, so two spellings of one folder share slots and two
folders never do. A name is also a cgroup (``lxc.payload.<name>``) and a host interface label,
so it is kept short and to ``[a-z0-9-]``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Iterable

from ..errors import ConfigError, SlotLimit

PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_NAME_RE = re.compile(r"^(?P<prefix>[a-z][a-z0-9]{0,15})-(?P<hash>[0-9a-f]{8})-(?P<slot>[1-9][0-9]{0,2})$")


def workspace_hash(workspace: str | os.PathLike[str]) -> str:
    real = os.path.realpath(os.fspath(workspace))
    return hashlib.sha256(real.encode()).hexdigest()[:8]


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise ConfigError(f"name prefix {prefix!r} must be 1-16 of [a-z0-9], starting with a letter")
    return prefix


def container_name(prefix: str, workspace: str | os.PathLike[str], slot: int) -> str:
    check_prefix(prefix)
    if not 1 <= slot <= 999:
        raise ConfigError(f"slot {slot} is out of range (1-999)")
    return f"{prefix}-{workspace_hash(workspace)}-{slot}"


@dataclass(frozen=True, slots=True)
class ParsedName:
    prefix: str
    hash8: str
    slot: int


def parse_name(name: str) -> ParsedName | None:
    m = _NAME_RE.match(name)
    if m is None:
        return None
    return ParsedName(m["prefix"], m["hash"], int(m["slot"]))


def free_slot(prefix: str, workspace: str | os.PathLike[str], existing: Iterable[str],
              max_slots: int) -> int:
    """The lowest slot of ``workspace`` whose name is not in ``existing``."""
    taken = set(existing)
    for slot in range(1, max_slots + 1):
        if container_name(prefix, workspace, slot) not in taken:
            return slot
    raise SlotLimit(os.path.realpath(os.fspath(workspace)), max_slots)
