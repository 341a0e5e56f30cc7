"""Where the declarative assets shipped in the wheel live: BPF C, rules, session profiles.

In a wheel the top-level folders ``bpf/``, ``rules/`` and ``sessions/`` are installed as the
resource packages ``coi_sentinel.data.<name>`` and found with :mod:`importlib.resources`. In a
source checkout installed in editable mode those packages do not exist, and the folders beside
the package directory are used (never a path relative to the current directory).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

ASSET_DIRS = ("bpf", "rules", "sessions")


def asset_dir(name: str) -> Path:
    """Return the directory holding the asset folder ``name`` (one of :data:`ASSET_DIRS`)."""
    if name not in ASSET_DIRS:
        raise ValueError(f"unknown asset folder {name!r}")
    # coi_sentinel.data is a regular package, so files() gives a real directory
    installed = Path(str(importlib.resources.files("coi_sentinel.data"))) / name
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / name
