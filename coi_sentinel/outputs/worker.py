"""The delivery process: ``python -m coi_sentinel.outputs.worker STATS_FD``.

An :class:`~coi_sentinel.outputs.OutputSet` starts it and writes frames to its stdin; it runs
every output (each with its own queue and thread) so that rendering, TLS, HTTP and protobuf
never take the event loop's interpreter; it runs as SCHED_BATCH at nice 5, so waking it never
preempts the event loop. It ignores SIGINT and SIGTERM (Ctrl-C on ``watch``
reaches the whole process group; the parent decides when to stop) and ends at the end of its
input, after delivering what it holds for at most the time the last ``close`` frame gave.

Frames on stdin, each ``<I Q q`` (payload length, output mask, wall-clock ns) + payload:

* the first: mask 0, payload ``{"specs": [...]}`` (the outputs, as OutputSpec.to_json);
* an alert: mask = the outputs it goes to (bit i: output i), payload our alert record (JSON);
* ``close``: mask 0, payload ``{"op": "close", "timeout": SECONDS}``.

Statistics go to STATS_FD as JSON lines, at most every 50 ms when they changed and once at
the end (``"final": true``): ``{"received": N, "outputs": [counters of output i, ...]}``.
stdout stays the stdout output's.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any, BinaryIO

import orjson

from .base import FRAME, Record
from .spec import OutputSpec

log = logging.getLogger(__name__)


class _Broken:
    """An output that could not start: everything sent to it is lost (``unavailable``)."""

    def __init__(self, spec: OutputSpec, err: BaseException) -> None:
        self.spec = spec
        self.name = spec.name
        self.error = f"{type(err).__name__}: {err}"
        self.lost = 0

    def offer(self, _record: Record) -> bool:
        self.lost += 1
        return False

    def counters(self) -> dict[str, Any]:
        return {"queued": 0, "accepted": 0, "delivered": 0, "lost_by_reason": {"unavailable": self.lost},
                "retries": 0, "busy": False, "last_error": self.error}

    def request_stop(self) -> None:
        pass

    def close(self, _timeout: float) -> None:
        pass


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    if data is None or len(data) < n:
        return None
    return data


def serve(stream: BinaryIO, stats_fd: int) -> int:
    from . import make_output

    head = _read_exact(stream, FRAME.size)
    if head is None:
        return 0
    size, _mask, _wall = FRAME.unpack(head)
    config = orjson.loads(_read_exact(stream, size) or b"{}")
    outputs: list[Any] = []
    for raw in config.get("specs", []):
        spec = OutputSpec.from_json(raw)
        out = make_output(spec)
        try:
            out.start()
        except Exception as err:  # a file it cannot open, a bad CA file...: counted, reported
            outputs.append(_Broken(spec, err))
        else:
            outputs.append(out)
    state = {"received": 0, "timeout": 3.0, "done": False}

    def snapshot(final: bool = False) -> bytes:
        return orjson.dumps({"received": state["received"], "final": final,
                             "outputs": [o.counters() for o in outputs]}) + b"\n"

    def report() -> None:
        last = b""
        while not state["done"]:
            line = snapshot()
            if line != last:
                try:
                    os.write(stats_fd, line)
                except OSError:
                    return
                last = line
            time.sleep(0.05)

    reporter = threading.Thread(target=report, name="coi-output-stats", daemon=True)
    reporter.start()
    try:
        while True:
            head = _read_exact(stream, FRAME.size)
            if head is None:
                break
            size, mask, wall_ns = FRAME.unpack(head)
            payload = _read_exact(stream, size)
            if payload is None:
                break
            if mask == 0:
                op = orjson.loads(payload)
                if op.get("op") == "close":
                    state["timeout"] = float(op.get("timeout", 3.0))
                continue
            record = Record(None, payload, wall_ns)      # decoded by the first output that reads it
            state["received"] += 1
            for i, out in enumerate(outputs):
                if mask >> i & 1:
                    out.offer(record)
    finally:
        deadline = time.monotonic() + state["timeout"]
        for out in outputs:
            out.request_stop()
        for out in outputs:
            out.close(max(0.05, deadline - time.monotonic()))
        state["done"] = True
        reporter.join(1.0)
        try:
            os.write(stats_fd, snapshot(final=True))
        except OSError:
            pass
    return 0


def _yield_to_the_event_loop() -> None:
    """SCHED_BATCH and nice 5: each frame the event loop writes wakes this process, and a
    woken batch task does not preempt the writer; delivery is throughput work, the event loop
    is latency work."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    try:
        os.nice(5)
    except OSError:
        pass


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _yield_to_the_event_loop()
    logging.basicConfig(level=logging.ERROR, format="coi-sentinel outputs: %(message)s")
    stats_fd = int(sys.argv[1])
    return serve(sys.stdin.buffer, stats_fd)


if __name__ == "__main__":
    sys.exit(main())
