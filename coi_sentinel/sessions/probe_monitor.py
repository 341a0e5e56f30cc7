"""The session monitor built on the probes: the container's cgroup in the kernel filter, its
events in an audit log, read on a thread of the process that owns the session.

``start`` returns only once the probes are attached and the container's cgroup id is in the
BPF scope map (the ancestor id of ``lxc.payload.<name>``, so sub-cgroups the container makes do
not escape), so the agent's first exec is seen. The audit log is the trace format with a hash
chain (:class:`~coi_sentinel.audit.log.AuditLog`), mode 0600, every event of the container.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..errors import MonitorError, SentinelError

log = logging.getLogger(__name__)


class ProbeMonitor:
    def __init__(self, poll_ms: int = 10) -> None:
        self.poll_ms = poll_ms
        self.alerts: list[dict] = []
        self.killed = False
        self.summary: dict | None = None
        self._mon = None
        self._audit = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._name = ""

    def start(self, container_name: str, cgroup_path: Path, audit_path: Path) -> None:
        from ..audit.log import AuditLog
        from ..monitor import Monitor, MonitorOptions
        from ..probes.cgroups import cgroup_id
        from ..trace.format import make_header

        self._name = container_name
        mon = Monitor(MonitorOptions(containers=(container_name,), poll_ms=self.poll_ms,
                                     kind="session"))
        try:
            mon.start()
        except SentinelError as err:
            raise MonitorError(f"cannot monitor {container_name}: {err}", hint=err.hint) from err
        try:
            cov = mon.coverage.to_dict() if mon.coverage is not None else {}
            audit = AuditLog(audit_path, make_header("run", coverage=cov, session=container_name,
                                                     cgroup=str(cgroup_path)), events="all")
        except SentinelError as err:
            mon.close()
            raise MonitorError(f"cannot open the audit log of {container_name}: {err}") from err
        scope = cgroup_id(cgroup_path)

        def sink(event, process=None) -> None:
            # the probes are host-wide until the scope is set during start(): what they read
            # from that moment is not the session's and is not written
            if event.scope_id == scope:
                audit(event, process)

        mon.pipeline.add_sink(sink)
        self._mon, self._audit = mon, audit
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{container_name}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        mon, audit = self._mon, self._audit
        try:
            while not self._stop.is_set():
                mon.poll()
                audit.tick()
        except BaseException as err:  # reported in stop() and the log; the session goes on
            self._error = err
            log.error("monitor of %s stopped reading: %s", self._name, err)

    def stop(self) -> None:
        if self._mon is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        mon, audit = self._mon, self._audit
        self._mon = self._audit = None
        try:
            if mon.stream is not None and self._error is None:
                mon.stream.drain()
                self.summary = mon.summary()
                drops = self.summary.get("drops") or {}
                if drops:
                    audit.write_record({"record": "drops", "counts": drops})
            if self._error is not None:
                audit.write_record({"record": "monitor", "event": "error", "error": str(self._error)})
        finally:
            try:
                audit.close()
            finally:
                mon.close()
