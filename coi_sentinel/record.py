"""Recording a trace: a command in a cgroup made for it (exactly its events, all descendants,
nothing else on the host), or a container / cgroup / the whole host for a while."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import SentinelError
from .events import model
from .monitor import Monitor, MonitorOptions
from .host.cgroups import WorkloadCgroup
from .sentinel import Lane, Listener, Sentinel
from .trace.format import make_header
from .trace.writer import TraceWriter, rewrite_header

log = logging.getLogger(__name__)

#: seconds a recorded command has after SIGINT (should_stop) before its cgroup is killed
STOP_GRACE = 5.0


@dataclass(slots=True)
class RecordResult:
    path: str
    events: int
    drops: dict[str, int]
    exit_code: int | None
    seconds: float


def record(output: str, command: list[str] | None = None, *, options: MonitorOptions | None = None,
           duration: float | None = None, should_stop: Callable[[], bool] = lambda: False,
           sensitive: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
           ruleset=None, listeners: Sequence[Listener] = ()) -> RecordResult:
    """Record into ``output``. With ``command``: run it in a fresh cgroup and record until it
    and all its descendants are gone. Without: record ``options``' scope for ``duration``.

    The sentinel's lane (:mod:`coi_sentinel.sentinel`) writes each event to the trace first;
    with ``ruleset`` a live engine then sees exactly the events written and ``listeners``
    hear its alerts (no responder, nothing else logged): how live and replayed alerts are
    compared. When ``should_stop()`` turns true the command gets SIGINT, and its whole cgroup
    SIGKILL :data:`STOP_GRACE` seconds later if it is still there."""
    opts = dataclasses.replace(options or MonitorOptions(), sensitive_prefixes=sensitive[0],
                               sensitive_suffixes=sensitive[1])
    cg: WorkloadCgroup | None = None
    if command:
        if shutil.which(command[0]) is None and not os.path.exists(command[0]):
            raise SentinelError(f"command not found: {command[0]}")
        cg = WorkloadCgroup("coi-record")
        opts = dataclasses.replace(opts, containers=(), cgroups=(str(cg.path),))
    opts = dataclasses.replace(opts, kind="record")
    t0 = time.monotonic()
    try:
        with Monitor(opts) as mon:
            header = make_header("record", coverage=mon.coverage.to_dict(),
                                 command=command or None, scope=mon.scope_text())
            writer = _Trace(TraceWriter(output, header, overwrite=True))
            sentinel = Sentinel(mon)
            sentinel.add(Lane(mon.pipeline.table, ruleset=ruleset, listeners=[writer, *listeners],
                              records=False))
            exit_code = None
            if cg is not None:
                exit_code = _run_command(cg, command, sentinel, should_stop)
            else:
                sentinel.run(should_stop, duration)
            mon.stream.drain()
            drops = mon.probes.drop_counts()
            writer.writer.close({"events": writer.count, "drops": drops, "summary": mon.summary()})
    finally:
        if cg is not None:
            cg.close()
    if drops:
        rewrite_header(output, drops=drops)
    return RecordResult(output, writer.count, drops, exit_code, time.monotonic() - t0)


class _Trace(Listener):
    """Every event into the trace, before the engine sees it."""

    def __init__(self, writer: TraceWriter) -> None:
        self.writer = writer
        self.count = 0

    def event(self, event: model.Event, process) -> None:
        self.count += 1
        self.writer.write_event(event)


def _run_command(cg: WorkloadCgroup, command: list[str], sentinel: Sentinel,
                 should_stop: Callable[[], bool]) -> int:
    procs = cg.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    try:
        p = subprocess.Popen(command, preexec_fn=enter)
    except OSError as err:
        raise SentinelError(f"cannot run {command[0]}: {err.strerror}") from err
    stopping = None
    while True:
        sentinel.source.poll(10)
        if p.poll() is not None and not cg.pids():
            break  # the command and every descendant are gone
        if stopping is None and should_stop():
            stopping = time.monotonic()
            p.send_signal(signal.SIGINT)
        elif stopping is not None and time.monotonic() - stopping > STOP_GRACE:
            # SIGINT ignored (an interactive shell does): every process of the cgroup, killed
            log.warning("%s did not stop on SIGINT within %.0f s: killing its cgroup", command[0], STOP_GRACE)
            (cg.path / "cgroup.kill").write_text("1\n")
            stopping = float("inf")
    return p.returncode
