"""Where alerts go besides the audit log: stdout, rotated files, syslog, webhooks, OTLP.

    outputs = OutputSet.from_options(["syslog+tcp://10.0.0.5:601?min=high"], config="outputs.toml")
    engine.add_callback(outputs.emit)    # never blocks
    ...
    outputs.status()                      # {name: {queued, delivered, lost, ...}}
    outputs.close()                       # bounded flush; what is left is counted lost

Where an alert is emitted (the event loop) only the filters run - minimum severity, rate limit
per rule - and the alert is rendered once as our alert record and written to a pipe: at once
when no frame went out in the last :data:`COALESCE_S`, else with the others of its burst at
the event loop's next :meth:`OutputSet.flush` (``AlertSinks.tick``, after each poll), one write
for the batch instead of one per alert (each write wakes the delivery process: ~10-30 us of
the event loop's CPU). A
delivery process (:mod:`coi_sentinel.outputs.worker`) runs the outputs, each behind its own
bounded queue and thread: rendering, TLS, HTTP and protobuf never take the event loop's
interpreter, and a slow or dead receiver costs the event loop nothing. The pipe (1 MiB) and a
bounded spill buffer are the first queue: when both are full the alert is counted lost
(``queue_full``) instead of waited for. ``process=False`` runs the outputs as threads of this
process instead (tests, tools).

Every output counts what it delivered and what it lost, by reason (``queue_full``,
``unreachable``, ``rejected``, ``unavailable``, ``shutdown``, ``worker_died``);
:meth:`OutputSet.take_losses` gives the losses not yet reported, for the audit log (the record
of truth, which gets every alert whatever the outputs do). URLs and config tables are described
in :mod:`coi_sentinel.outputs.spec`.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import orjson

from .base import FRAME, DeliveryError, Filter, Output, Record
from .spec import OutputSpec, load_config, parse_config, parse_table, parse_url

if TYPE_CHECKING:
    from ..records import AlertRecord
    from ..rules.alert import Alert

__all__ = ["DeliveryError", "Output", "OutputSet", "OutputSpec", "Record", "load_config",
           "make_output", "parse_config", "parse_table", "parse_url"]

log = logging.getLogger(__name__)

#: bytes of frames kept in this process when the pipe to the delivery process is full
SPILL_BYTES = 4 << 20
PIPE_BYTES = 1 << 20
#: frames emitted this soon after the last write wait for the next flush (one write a burst) ...
COALESCE_S = 0.01
#: ... or until this many bytes wait
COALESCE_BYTES = 64 << 10
F_SETPIPE_SZ = 1031
MAX_OUTPUTS = 64


def make_output(spec: OutputSpec) -> Output:
    """The output that implements a spec (not started)."""
    if spec.kind == "stdout":
        from .stream import StdoutOutput
        return StdoutOutput(spec)
    if spec.kind == "file":
        from .stream import FileOutput
        return FileOutput(spec)
    if spec.kind == "syslog":
        from .syslog import SyslogOutput
        return SyslogOutput(spec)
    if spec.kind == "webhook":
        from .webhook import WebhookOutput
        return WebhookOutput(spec)
    if spec.kind == "otlp":
        from .otlp import OtlpOutput
        return OtlpOutput(spec)
    raise ValueError(f"unknown output kind {spec.kind!r}")


class Handle:
    """One output as the emitting side knows it: its spec and its filter."""

    __slots__ = ("spec", "name", "filter", "sent", "pipe_full", "died")

    def __init__(self, spec: OutputSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.filter = Filter(spec)
        self.sent = 0           # handed to the delivery process (or the thread)
        self.pipe_full = 0      # lost here: pipe and spill buffer full
        self.died = 0           # lost here: the delivery process was gone


class OutputSet:
    """Several outputs fed the same alerts."""

    def __init__(self, specs: Iterable[OutputSpec] = (), *, hostname: str | None = None,
                 process: bool = True) -> None:
        self.outputs: list[Handle] = [Handle(s) for s in specs]
        self.hostname = hostname or socket.gethostname()
        self.process = process
        names = [o.name for o in self.outputs]
        dup = {n for n in names if names.count(n) > 1}
        from ..errors import ConfigError
        if dup:
            raise ConfigError(f"two outputs are named {sorted(dup)[0]!r}: give one a name=")
        if len(self.outputs) > MAX_OUTPUTS:
            raise ConfigError(f"at most {MAX_OUTPUTS} outputs")
        self._limited = any(o.filter.limiter is not None for o in self.outputs)
        self._threads: list[Output] = []
        self._proc: subprocess.Popen | None = None
        self._wfd = -1
        self._stats_fd = -1
        self._stats_buf = b""
        self._stats_lock = threading.Lock()   # the metrics server reads status() too
        self._child: dict[str, Any] = {}
        self._spill: collections.deque[memoryview] = collections.deque()
        self._spill_bytes = 0
        #: frames of a burst not written yet (see flush()): (output mask, frame)
        self._pending: list[tuple[int, bytes]] = []
        self._pending_bytes = 0
        self._written_at = -COALESCE_S      # monotonic time of the last write to the pipe
        #: bytes of frames kept here when the pipe is full; past that alerts are lost
        self.spill_limit = SPILL_BYTES
        self._received_target = 0
        self._reported: dict[str, dict[str, int]] = {}
        self._closed = False

    @classmethod
    def from_options(cls, urls: Iterable[str] = (), *, config: str | Path | None = None,
                     tables: Iterable[OutputSpec] = (), start: bool = True,
                     process: bool = True) -> "OutputSet":
        """Outputs from a config file's ``[[outputs]]`` (``config``), specs already parsed
        (``tables``, e.g. from the daemon's config) and command-line URLs, in that order;
        started unless ``start`` is False."""
        specs: list[OutputSpec] = list(load_config(config) if config is not None else [])
        specs += list(tables)
        specs += [parse_url(u) for u in urls]
        outset = cls(specs, process=process)
        if start:
            outset.start()
        return outset

    def __bool__(self) -> bool:
        return bool(self.outputs)

    # ---- lifecycle ----
    def start(self) -> None:
        if not self.outputs:
            return
        if not self.process:
            for h in self.outputs:
                out = make_output(h.spec)
                out.start()
                self._threads.append(out)
            return
        stats_r, stats_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "coi_sentinel.outputs.worker", str(stats_w)],
                stdin=subprocess.PIPE, pass_fds=(stats_w,), close_fds=True)
        except OSError:
            os.close(stats_r)
            raise
        finally:
            os.close(stats_w)
        assert self._proc.stdin is not None
        self._wfd = self._proc.stdin.fileno()
        self._stats_fd = stats_r
        try:
            fcntl.fcntl(self._wfd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass                  # the default 64 KiB then
        specs = [h.spec.to_json() for h in self.outputs]
        for spec in specs:                  # syslog's PROCID is the sentinel's, not the helper's
            spec["options"].setdefault("procid", str(os.getpid()))
        config = orjson.dumps({"specs": specs})
        self._write_all(_frame(0, 0, config), 5.0)
        os.set_blocking(self._wfd, False)
        os.set_blocking(self._stats_fd, False)

    def close(self, timeout: float = 3.0) -> None:
        """Flush for at most ``timeout`` s in all, then stop every output; what could not be
        delivered in time is counted lost (reason ``shutdown``)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        if not self.process:
            for out in self._threads:
                out.request_stop()
            for out in self._threads:
                out.close(max(0.05, deadline - time.monotonic()))
            return
        if self._proc is None:
            return
        self.flush()
        try:
            self._flush_spill(deadline - time.monotonic())
            left = max(0.05, deadline - time.monotonic())
            self._write_all(_frame(0, 0, orjson.dumps({"op": "close", "timeout": left})), 0.5)
        except OSError:
            pass
        self._spill.clear()             # not sent in time: counted "shutdown" below
        self._spill_bytes = 0
        try:
            self._proc.stdin.close()        # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self._proc.wait(max(0.1, deadline - time.monotonic()) + 1.0)
        except subprocess.TimeoutExpired:
            log.warning("outputs: the delivery process did not finish in time; stopping it")
            self._proc.kill()
            self._proc.wait()
        self._read_stats(final=True)
        with self._stats_lock:
            os.close(self._stats_fd)
            self._stats_fd = -1

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the event loop ----
    def emit(self, alert: "Alert", *, wall_offset_ns: int | None = None, hostname: str | None = None,
             record: "AlertRecord | None" = None) -> None:
        """Send an alert to every output whose filters it passes; never blocks.
        ``wall_offset_ns``: add it to ``ts_ns`` for ns since the epoch (default: the live
        clocks' offset now; replay passes the trace's); ``hostname``: the host the alert came
        from (default: this one); ``record``: the alert's record already made with that clock
        and host (sent as it is: one record per alert)."""
        now = time.monotonic() if self._limited else 0.0
        sev, rule = alert.severity, alert.rule
        mask = 0
        for i, h in enumerate(self.outputs):
            if h.filter.passes(sev, rule, now):
                mask |= 1 << i
        if not mask or self._closed:
            return
        if wall_offset_ns is None:
            wall_offset_ns = time.time_ns() - time.monotonic_ns()
        rec = Record.of(alert, wall_offset_ns, hostname or self.hostname, record)
        if self.process:
            self._send(mask, rec.wall_ns, rec.raw)
        else:
            for i, out in enumerate(self._threads):
                if mask >> i & 1:
                    self.outputs[i].sent += 1
                    out.offer(rec)

    __call__ = emit            # usable directly as an engine callback

    def _send(self, mask: int, wall_ns: int, raw: bytes) -> None:
        frame = _frame(mask, wall_ns, raw)
        self._pending.append((mask, frame))
        self._pending_bytes += len(frame)
        now = time.monotonic()
        if now - self._written_at >= COALESCE_S or self._pending_bytes >= COALESCE_BYTES:
            self._write_pending(now)

    def flush(self) -> None:
        """Write the frames a burst left waiting (never blocks: what the pipe does not take
        goes to the spill buffer, or is counted lost). The event loop calls it after each
        batch of events (``AlertSinks.tick``); close() and wait_idle() call it too."""
        if self._pending:
            self._write_pending(time.monotonic())

    def _write_pending(self, now: float) -> None:
        pending = self._pending
        self._pending = []
        self._pending_bytes = 0
        if self._wfd < 0:
            for mask, _frame_ in pending:
                self._count(mask, "died")
            return
        if self._spill:
            self._flush_spill(0)
        done = 0
        if not self._spill:
            data = pending[0][1] if len(pending) == 1 else b"".join(f for _m, f in pending)
            try:
                n = os.write(self._wfd, data)
            except BlockingIOError:
                n = 0
            except OSError:             # EPIPE: the delivery process is gone
                self._dead()
                for mask, _frame_ in pending:
                    self._count(mask, "died")
                return
            self._written_at = now
            written = 0
            for mask, frame in pending:
                if written >= n:
                    break
                if written + len(frame) > n:    # a partial frame must go out whole: keep the rest
                    rest = memoryview(frame)[n - written:]
                    self._spill.append(rest)
                    self._spill_bytes += len(rest)
                written += len(frame)
                self._count(mask, "sent")
                done += 1
        for mask, frame in pending[done:]:
            if self._spill_bytes + len(frame) > self.spill_limit:
                self._count(mask, "pipe_full")
                continue
            self._spill.append(memoryview(frame))
            self._spill_bytes += len(frame)
            self._count(mask, "sent")

    def _count(self, mask: int, what: str) -> None:
        for i, h in enumerate(self.outputs):
            if mask >> i & 1:
                setattr(h, what, getattr(h, what) + 1)

    def _flush_spill(self, timeout: float) -> None:
        """Write spilled frames, oldest first, until the pipe is full (``timeout`` 0) or for
        up to ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        spill = self._spill
        while spill and self._wfd >= 0:
            head = spill[0]
            try:
                n = os.write(self._wfd, head)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                select.select([], [self._wfd], [], min(left, 0.05))
                continue
            except OSError:
                self._dead()
                return
            self._spill_bytes -= n
            if n == len(head):
                spill.popleft()
            else:
                spill[0] = head[n:]

    def _dead(self) -> None:
        if self._wfd >= 0:
            log.error("outputs: the delivery process is gone; alerts for the outputs are lost "
                      "(the audit log still has them)")
        self._wfd = -1

    def _write_all(self, data: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._wfd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the delivery process does not read") from None
                select.select([], [self._wfd], [], 0.05)

    # ---- what happened ----
    def _read_stats(self, final: bool = False) -> None:
        with self._stats_lock:
            self._read_stats_locked(final)

    def _read_stats_locked(self, final: bool) -> None:
        if self._stats_fd < 0:
            return
        if final:
            os.set_blocking(self._stats_fd, True)
        while True:
            try:
                chunk = os.read(self._stats_fd, 65536)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.EINTR:
                    continue
                break
            if not chunk:
                break
            self._stats_buf += chunk
        if b"\n" in self._stats_buf:
            lines = self._stats_buf.split(b"\n")
            self._stats_buf = lines[-1]
            for line in reversed(lines[:-1]):
                if line:
                    self._child = orjson.loads(line)
                    break

    def _counters(self, i: int) -> dict[str, Any]:
        if not self.process:
            return self._threads[i].counters() if i < len(self._threads) else {}
        self._read_stats()
        outs = self._child.get("outputs") or []
        return outs[i] if i < len(outs) else {}

    def status(self) -> dict[str, dict[str, Any]]:
        """Per output: queued (now, not yet delivered), delivered, lost and by reason,
        suppressed (rate limit), filtered (severity), retries, last error."""
        out: dict[str, dict[str, Any]] = {}
        gone = self.process and self._proc is not None and self._proc.poll() is not None
        finished = gone or (self._closed and not self.process)
        why = "shutdown" if self._closed else "worker_died"
        for i, h in enumerate(self.outputs):
            c = self._counters(i)
            reasons = {k: v for k, v in (c.get("lost_by_reason") or {}).items() if v}
            if h.pipe_full:
                reasons["queue_full"] = reasons.get("queue_full", 0) + h.pipe_full
            if h.died:
                reasons["worker_died"] = reasons.get("worker_died", 0) + h.died
            delivered = int(c.get("delivered", 0))
            in_flight = h.sent - delivered - sum((c.get("lost_by_reason") or {}).values())
            if finished and in_flight > 0:      # never delivered, never reported: lost
                reasons[why] = reasons.get(why, 0) + in_flight
                in_flight = 0
            out[h.name] = {**h.spec.describe(), "queued": max(0, in_flight), "delivered": delivered,
                           "lost": sum(reasons.values()), "lost_by_reason": reasons,
                           "suppressed": h.filter.suppressed, "filtered": h.filter.filtered,
                           "retries": c.get("retries", 0), "busy": bool(c.get("busy")),
                           "last_error": c.get("last_error")}
        return out

    def lost(self) -> int:
        return sum(s["lost"] for s in self.status().values())

    def take_losses(self) -> dict[str, dict[str, int]]:
        """Losses by output and reason since the last call (empty when none): what the caller
        writes to the audit log (``{"record": "output_loss", "lost": ...}``)."""
        new: dict[str, dict[str, int]] = {}
        for name, s in self.status().items():
            seen = self._reported.setdefault(name, {})
            diff = {k: v - seen.get(k, 0) for k, v in s["lost_by_reason"].items() if v - seen.get(k, 0) > 0}
            if diff:
                new[name] = diff
                seen.update(s["lost_by_reason"])
        return new

    def ready(self) -> bool:
        """The delivery process has started every output (it has reported once); in-process
        outputs are ready when started."""
        if not self.process:
            return True
        self._read_stats()
        return bool(self._child)

    def wait_idle(self, timeout: float) -> bool:
        """Until everything emitted so far was delivered or counted lost (True), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process:
                self.flush()
                self._flush_spill(0)
            if all(s["queued"] == 0 for s in self.status().values()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _frame(mask: int, wall_ns: int, payload: bytes) -> bytes:
    return FRAME.pack(len(payload), mask, wall_ns) + payload
