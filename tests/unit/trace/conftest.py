"""Events for trace tests: one of each shape the writer and reader must carry."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from coi_sentinel.events import codec, model
from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL

_HEADER = {"ts_ns": 1_000_000_000, "pid": 4242, "tid": 4242, "ppid": 1, "uid": 1000, "gid": 1000,
           "comm": "bash", "cgroup_id": 77, "scope_id": 70, "container": "agent-1"}

_FIELDS: dict[str, dict[str, Any]] = {
    "exec": {"filename": "/usr/bin/git", "argv": ["git", "status"], "argc": 2, "errno": 0,
             "fd": -100, "flags": 0},
    "fork": {"child_pid": 4243, "clone_flags": 17},
    "exit": {"exit_code": 0, "signal": 0},
    "connect": {"fd": 3, "family": "inet", "daddr": "10.0.0.9", "dport": 4444, "errno": 115},
    "file_open": {"path": "/home/u/.ssh/id_rsa", "flags": 0, "mode": 0, "fd": 5, "errno": 0,
                  "kind": "sensitive", "dirfd": -100},
}


_ZERO = {"int": 0, "str": "", "bool": False}


def event(kind: str = "exec", **overrides: Any) -> model.Event:
    """An event of ``kind``; fields added to the schema later get zero values."""
    d: dict[str, Any] = {"type": kind, **_HEADER, **_FIELDS[kind], **overrides}
    for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[kind]]):
        d.setdefault(f.name, _ZERO.get(str(f.type), ()))
    return codec.from_dict(d)


@pytest.fixture
def make_event():
    return event


@pytest.fixture
def sample_events() -> list[model.Event]:
    out = []
    for i, kind in enumerate(["exec", "fork", "exit", "connect", "file_open"] * 7):
        out.append(event(kind, ts_ns=1_000_000_000 + i * 1000, pid=4000 + i))
    return out
