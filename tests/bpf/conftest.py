"""bpf tier: the real probes on this kernel, scoped to a cgroup each test makes for its own
workload, so tests running in parallel never see each other's events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from coi_sentinel.events import model
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.probes.cgroups import WorkloadCgroup

from support import require_bpf


@dataclass
class Run:
    pid: int
    returncode: int
    stdout: bytes
    stderr: bytes
    events: list = field(default_factory=list)

    def of(self, cls, **match):
        return [e for e in self.events if isinstance(e, cls)
                and all(getattr(e, k) == v for k, v in match.items())]


class Watched:
    """The worker's one loaded ProbeSet + stream; each test scopes it to a fresh cgroup."""

    def __init__(self) -> None:
        from coi_sentinel.probes.loader import ProbeSet
        from coi_sentinel.probes.stream import EventStream

        self.probes = ProbeSet()
        self.probes.load()
        self.pipeline = Pipeline()
        self._by_scope: dict[int, list] = {}
        self.pipeline.add_sink(self._route)
        self.stream = EventStream(self.probes, self.pipeline)

    def _route(self, ev, _proc) -> None:
        bucket = self._by_scope.get(ev.scope_id)
        if bucket is not None:
            bucket.append(ev)

    def run(self, argv: list[str], *, timeout: float = 60, stdin: bytes | None = None,
            scoped: bool = True, env: dict | None = None, kill_policy: dict | None = None) -> Run:
        """Run argv in a new cgroup (watched when ``scoped``) until it exits and its events,
        including the kernel aggregates, have arrived."""
        with WorkloadCgroup("coi-test") as cg:
            events: list = []
            if scoped:
                self.probes.add_scope(cg.id, cg.level)
                if kill_policy:
                    self.probes.set_kill_policy(
                        cg.id, memfd_exec=kill_policy.get("memfd_exec", False),
                        blocked=kill_policy.get("blocked", ()),
                        blocked_ports=kill_policy.get("ports", ()))
            self._by_scope[cg.id] = events
            try:
                procs = cg.path / "cgroup.procs"

                def enter_cgroup() -> None:
                    with open(procs, "w") as f:
                        f.write(str(os.getpid()))

                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=enter_cgroup, env=env)
                out, err = p.communicate(stdin, timeout=timeout)
                self._wait_exit(events, p.pid, expect=scoped)
                return Run(p.pid, p.returncode, out, err, events)
            finally:
                if scoped:
                    self.probes.remove_scope(cg.id)
                del self._by_scope[cg.id]

    def _wait_exit(self, events: list, pid: int, expect: bool, timeout: float = 10) -> None:
        deadline = time.monotonic() + (timeout if expect else 0.5)
        while time.monotonic() < deadline:
            self.stream.poll(20)
            if any(isinstance(e, model.ExitEvent) and e.pid == pid for e in events):
                break
        # everything queued (bulk records come a budget per poll), and a final aggregate sweep
        self.stream.poll(0)
        while self.stream.lagging:
            self.stream.poll(0)
        for ev in self.stream.aggregates.sweep():
            self.pipeline.feed(ev)

    def drops(self) -> dict[str, int]:
        return self.probes.drop_counts()


@pytest.fixture(scope="session")
def watched():
    require_bpf()
    w = Watched()
    yield w
    w.probes.close()


@pytest.fixture
def py():
    """The interpreter for workloads."""
    return sys.executable
