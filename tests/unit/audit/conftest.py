"""Audit log test helpers: events in two scopes, a log written and closed, lines to tamper with."""

from __future__ import annotations

import errno
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy
from coi_sentinel.events import codec, model
from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL
from coi_sentinel.trace import make_header, writer

SCOPE_A, SCOPE_B = 700, 800


def event(i: int, scope: int = SCOPE_A, kind: str = "exec", **overrides: Any) -> model.Event:
    common = {"ts_ns": 1_000_000_000 + i * 1_000_000, "pid": 1000 + i, "tid": 1000 + i,
              "ppid": 999, "uid": 1000, "gid": 1000, "comm": "bash", "cgroup_id": scope + 1,
              "scope_id": scope, "container": f"c{scope}"}
    specific: dict[str, Any] = {
        "exec": {"filename": "/usr/bin/env", "argv": ["env", str(i)], "argc": 2, "errno": 0,
                 "fd": -100, "flags": 0},
        "connect": {"fd": 3, "family": "inet", "daddr": "10.0.0.9", "dport": 4444, "errno": 0},
    }[kind]
    d = {"type": kind, **common, **specific, **overrides}
    for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[kind]]):    # fields added later: 0
        d.setdefault(f.name, {"int": 0, "str": "", "bool": False}.get(str(f.type), ()))
    return codec.from_dict(d)


@pytest.fixture
def make_event():
    return event


@pytest.fixture
def fast_policy() -> AuditPolicy:
    """No fsync (tests do not need durability against power loss), no rotation by default."""
    return AuditPolicy(fsync=False, max_bytes=None, max_age=None, retention=None)


@pytest.fixture
def closed_log(tmp_path, fast_policy) -> Path:
    """One closed audit file: header, 20 events, an alert, an action, footer (24 lines)."""
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        for i in range(20):
            log.write_event(event(i))
        log.write_alert({"rule": "r1", "severity": "high", "scope_id": SCOPE_A})
        log.write_action({"action": "pause", "container": "c700"})
    return path



class FailingDisk:
    """Stands in for os.write on one fd: lets ``budget`` bytes through, then fails with ENOSPC
    until :meth:`free` is called. Other fds are written normally."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fd: int, budget: int) -> None:
        self.fd, self.budget, self.full = fd, budget, True
        self._real = os.write
        monkeypatch.setattr(writer.os, "write", self)

    def __call__(self, fd: int, data: Any) -> int:
        if fd != self.fd or not self.full:
            return self._real(fd, data)
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self._real(fd, bytes(data[: self.budget]))
        self.budget -= n
        return n

    def free(self) -> None:
        self.full = False


@pytest.fixture
def failing_disk(monkeypatch):
    return lambda fd, budget=0: FailingDisk(monkeypatch, fd, budget)

