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
from typing import Callable

from .errors import SentinelError
from .events import model
from .monitor import Monitor, MonitorOptions
from .pipeline import Pipeline
from .probes.cgroups import WorkloadCgroup
from .trace.format import make_header
from .trace.writer import TraceWriter, rewrite_header

log = logging.getLogger(__name__)


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
           attach: Callable[[Pipeline], None] | None = None) -> RecordResult:
    """Record into ``output``. With ``command``: run it in a fresh cgroup and record until it
    and all its descendants are gone. Without: record ``options``' scope for ``duration``.

    ``attach`` is called with the monitor's pipeline once the trace writer is its first sink,
    before anything runs: a live rule engine added there sees exactly the events written
    (``Engine(ruleset, on_alert=...).attach``), which is how live and replayed alerts are
    compared."""
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
            writer = TraceWriter(output, header, overwrite=True)
            count = [0]

            def sink(ev: model.Event, _proc) -> None:
                count[0] += 1
                writer.write_event(ev)

            mon.pipeline.add_sink(sink)
            if attach is not None:
                attach(mon.pipeline)
            exit_code = None
            if cg is not None:
                exit_code = _run_command(cg, command, mon, should_stop)
            else:
                mon.run(should_stop, duration)
            mon.stream.drain()
            drops = mon.probes.drop_counts()
            writer.close({"events": count[0], "drops": drops, "summary": mon.summary()})
    finally:
        if cg is not None:
            cg.close()
    if drops:
        rewrite_header(output, drops=drops)
    return RecordResult(output, count[0], drops, exit_code, time.monotonic() - t0)


def _run_command(cg: WorkloadCgroup, command: list[str], mon: Monitor,
                 should_stop: Callable[[], bool]) -> int:
    procs = cg.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    try:
        p = subprocess.Popen(command, preexec_fn=enter)
    except OSError as err:
        raise SentinelError(f"cannot run {command[0]}: {err.strerror}") from err
    stopping = False
    while True:
        mon.poll(10)
        if p.poll() is not None and not cg.pids():
            break  # the command and every descendant are gone
        if should_stop() and not stopping:
            stopping = True
            p.send_signal(signal.SIGINT)
    return p.returncode
