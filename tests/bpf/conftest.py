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
from coi_sentinel.host.cgroups import WorkloadCgroup

from support import remove_dead_status_files, require_bpf, status_files


@pytest.fixture(scope="session", autouse=True)
def no_status_file_left():
    """The status files of the monitors this tier's tests killed go with the tier."""
    before = status_files()
    yield
    remove_dead_status_files(before)


@dataclass
class Run:
    pid: int
    returncode: int
    stdout: bytes
    stderr: bytes
    events: list = field(default_factory=list)
    lost: int = 0               # records of this run's scope the kernel could not queue

    def of(self, cls, **match):
        return [e for e in self.events if isinstance(e, cls)
                and all(getattr(e, k) == v for k, v in match.items())]


class Watched:
    """The worker's one loaded ProbeSet + stream; each test scopes it to a fresh cgroup."""

    def __init__(self, options=None) -> None:
        from coi_sentinel.probes.loader import ProbeSet
        from coi_sentinel.probes.stream import EventStream

        self.probes = ProbeSet(options)
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
            scoped: bool = True, env: dict | None = None, kill_policy: dict | None = None,
            cwd: str | None = None) -> Run:
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
                        blocked_ports=kill_policy.get("ports", ()),
                        shell_socket=kill_policy.get("shell_socket", False),
                        uring_connect=kill_policy.get("uring_connect", False),
                        unlinked_exec=kill_policy.get("unlinked_exec", False),
                        compat_syscall=kill_policy.get("compat_syscall", False))
            self._by_scope[cg.id] = events
            try:
                procs = cg.path / "cgroup.procs"

                def enter_cgroup() -> None:
                    with open(procs, "w") as f:
                        f.write(str(os.getpid()))

                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=enter_cgroup, env=env, cwd=cwd)
                out, err = p.communicate(stdin, timeout=timeout)
                self._wait_exit(events, p.pid, expect=scoped)
                lost = self.probes.scope_drop_counts().get(cg.id, 0)
                return Run(p.pid, p.returncode, out, err, events, lost)
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

    @staticmethod
    def alerts(events: list) -> list:
        """The bundled rules over events the probes sent (in stream order)."""
        from coi_sentinel.rules import Engine, load_ruleset

        pipeline = Pipeline()
        found: list = []
        pipeline.add_sink(Engine(load_ruleset(None), on_alert=found.append, table=pipeline.table))
        for ev in events:
            pipeline.feed(ev)
        return found


@pytest.fixture(scope="session")
def watched():
    require_bpf()
    w = Watched()
    yield w
    w.probes.close()


@pytest.fixture(scope="module")
def one_page_hi_ring():
    """Exec and process probes whose high-priority ring is one page: it refuses records as
    soon as two execs wait unread, as a ring whose lock gives up (rqspinlock, since 6.15) does."""
    from coi_sentinel.probes.loader import ProbeOptions

    require_bpf()
    w = Watched(ProbeOptions(families=("exec", "proc"), hi_pages=1))
    yield w
    w.probes.close()


@pytest.fixture
def py():
    """The interpreter for workloads."""
    return sys.executable
