"""A monitor: probes loaded and scoped, a stream feeding a pipeline: the live source of the
sentinel (:mod:`coi_sentinel.sentinel`), which ``watch``, ``record`` and the daemon run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .host import status
from .errors import ScopeError
from .events.proctable import ProcessTable
from .pipeline import Pipeline
from .host import cgroups
from .probes.loader import Coverage, ProbeOptions, ProbeSet
from .probes.stream import EventStream

log = logging.getLogger(__name__)

STATUS_INTERVAL = 1.0   # seconds between status file updates


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    containers: tuple[str, ...] = ()
    cgroups: tuple[str, ...] = ()
    families: tuple[str, ...] | None = None
    sensitive_prefixes: tuple[str, ...] = ()
    sensitive_suffixes: tuple[str, ...] = ()
    sweep_interval: float = 1.0
    poll_ms: int = 5
    kind: str = "watch"           # what runs it, for `status`: watch, record, session, daemon
    #: with no container or cgroup given, trace nothing until add_scope() (the daemon);
    #: otherwise host-wide
    scoped_only: bool = False


class Monitor:
    def __init__(self, options: MonitorOptions | None = None, pipeline: Pipeline | None = None) -> None:
        self.options = options or MonitorOptions()
        self.pipeline = pipeline or Pipeline(ProcessTable())
        self.names = cgroups.ContainerNames()
        popts = ProbeOptions() if self.options.families is None else ProbeOptions(families=self.options.families)
        self.probes = ProbeSet(popts)
        self.coverage: Coverage | None = None
        self.stream: EventStream | None = None
        self._scope_labels: list[str] = []
        self._scope_paths: dict[str, Path] = {}
        self._published = 0.0
        self._started_wall = time.time()

    def start(self) -> "Monitor":
        o = self.options
        # resolve the scope before loading anything, so a bad name fails fast and cleanly
        targets: list[tuple[Path, str]] = []
        for name in o.containers:
            targets.append((cgroups.container_cgroup(name), name))
        for path in o.cgroups:
            p = Path(path)
            if not p.is_dir():
                raise ScopeError(f"cgroup {path} does not exist")
            targets.append((p, f"cgroup:{p.name}"))
        self.coverage = self.probes.load()
        try:
            if o.sensitive_prefixes or o.sensitive_suffixes:
                self.probes.set_sensitive(list(o.sensitive_prefixes), list(o.sensitive_suffixes))
            for path, label in targets:
                self.add_scope(path, label)
            if not targets and not o.scoped_only:
                self.probes.set_host_wide()
            self.pipeline.table.seed_from_proc()
            self.probes.seed_parents(self.pipeline.table)
            self.stream = EventStream(self.probes, self.pipeline, resolve=self.names,
                                      sweep_interval=o.sweep_interval, poll_ms=o.poll_ms)
        except BaseException:
            self.probes.close()
            raise
        return self

    def add_scope(self, path: Path, label: str) -> int:
        cid = cgroups.cgroup_id(path)
        self.probes.add_scope(cid, cgroups.cgroup_level(path, self.names.mount))
        self.names.add(cid, label)
        self._scope_labels.append(label)
        self._scope_paths[label] = Path(path)
        return cid

    def remove_scope(self, cid: int) -> None:
        self.probes.remove_scope(cid)
        label = self.names(cid)
        if label in self._scope_labels:
            self._scope_labels.remove(label)
            self._scope_paths.pop(label, None)

    def scope_paths(self) -> dict[str, Path]:
        """label (as in events' "container") -> cgroup directory of each watched scope."""
        return dict(self._scope_paths)

    def scope_text(self) -> str:
        return "scope: " + (", ".join(self._scope_labels) if self._scope_labels else "host-wide")

    def poll(self, timeout_ms: int | None = None) -> int:
        assert self.stream is not None
        n = self.stream.poll(timeout_ms)
        now = time.monotonic()
        if now - self._published >= STATUS_INTERVAL:
            self._published = now
            self.publish_status()
        return n

    def publish_status(self) -> None:
        """Events, drops and kills so far, for `coi-sentinel status`."""
        s = self.summary()
        status.publish({"kind": self.options.kind, "scope": s["scope"], "events": s["events"],
                        "drops": s["drops"], "aggregation_maps_full": s["aggregation_maps_full"],
                        "kills": self.probes.kill_counts(),
                        "coverage": {"attached": len(self.coverage.attached) if self.coverage else 0,
                                     "missing": len(self.coverage.missing) if self.coverage else 0},
                        "started": self._started_wall})

    def summary(self) -> dict:
        assert self.stream is not None
        s = self.stream.summary()
        s["scope"] = self._scope_labels or ["host"]
        s["pid"] = os.getpid()
        return s

    def close(self) -> None:
        try:
            self.pipeline.close()
        finally:
            status.withdraw()
            if self.stream is not None:
                self.stream.close()
            self.probes.close()

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
