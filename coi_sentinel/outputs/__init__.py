"""Where alerts go besides the audit log: stdout, rotated files, syslog, webhooks, OTLP.

    outputs = OutputSet.from_options(["syslog+tcp://10.0.0.5:601?min=high"], config="outputs.toml")
    engine.add_callback(outputs.emit)    # never blocks: each output has its own queue and thread
    ...
    outputs.status()                      # {name: {queued, delivered, lost, ...}}
    outputs.close()                       # bounded flush; what is left is counted lost

Every output filters by minimum severity and a per-rule rate limit, holds alerts in a bounded
queue (full: counted lost, the event loop never waits) and counts what it delivered and what
it lost, by reason. :meth:`OutputSet.take_losses` gives the losses not yet reported, for the
audit log (the record of truth, which gets every alert whatever the outputs do).
URLs and config tables are described in :mod:`coi_sentinel.outputs.spec`.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .base import DeliveryError, Output
from .spec import OutputSpec, load_config, parse_config, parse_table, parse_url

if TYPE_CHECKING:
    from ..rules.alert import Alert

__all__ = ["DeliveryError", "Output", "OutputSet", "OutputSpec", "load_config", "make_output",
           "parse_config", "parse_table", "parse_url"]


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


class OutputSet:
    """Several outputs fed the same alerts."""

    def __init__(self, outputs: Iterable[Output] = (), *, hostname: str | None = None) -> None:
        self.outputs: list[Output] = list(outputs)
        self.hostname = hostname or socket.gethostname()
        self._reported: dict[str, dict[str, int]] = {}
        names = [o.name for o in self.outputs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            from ..errors import ConfigError
            raise ConfigError(f"two outputs are named {sorted(dup)[0]!r}: give one a name=")

    @classmethod
    def from_options(cls, urls: Iterable[str] = (), *, config: str | Path | None = None,
                     tables: Iterable[OutputSpec] = (), start: bool = True) -> "OutputSet":
        """Outputs from a config file's ``[[outputs]]`` (``config``), specs already parsed
        (``tables``, e.g. from the daemon's config) and command-line URLs, in that order;
        started unless ``start`` is False."""
        specs: list[OutputSpec] = list(load_config(config) if config is not None else [])
        specs += list(tables)
        specs += [parse_url(u) for u in urls]
        outset = cls([make_output(s) for s in specs])
        if start:
            outset.start()
        return outset

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def start(self) -> None:
        started: list[Output] = []
        try:
            for out in self.outputs:
                out.start()
                started.append(out)
        except BaseException:
            for out in started:
                out.close(0.1)
            raise

    def emit(self, alert: "Alert", *, wall_offset_ns: int | None = None, hostname: str | None = None) -> None:
        """Queue an alert on every output (never blocks). ``wall_offset_ns``: add it to
        ``ts_ns`` for ns since the epoch (default: the live clocks' offset now; replay passes
        the trace's); ``hostname``: the host the alert came from (default: this one)."""
        if wall_offset_ns is None:
            wall_offset_ns = time.time_ns() - time.monotonic_ns()
        host = hostname or self.hostname
        for out in self.outputs:
            out.offer(alert, wall_offset_ns, host)

    __call__ = emit            # usable directly as an engine callback

    def status(self) -> dict[str, dict[str, Any]]:
        """Per output: queued (now), delivered, lost (and by reason), suppressed, filtered..."""
        return {o.name: o.status() for o in self.outputs}

    def lost(self) -> int:
        return sum(o.lost for o in self.outputs)

    def take_losses(self) -> dict[str, dict[str, int]]:
        """Losses by output and reason since the last call (empty when none): what the caller
        writes to the audit log (``{"record": "output_loss", "lost": ...}``)."""
        new: dict[str, dict[str, int]] = {}
        for o in self.outputs:
            now = {"queue_full": o.queue_full, **o.failed}
            seen = self._reported.setdefault(o.name, {})
            diff = {k: v - seen.get(k, 0) for k, v in now.items() if v - seen.get(k, 0) > 0}
            if diff:
                new[o.name] = diff
                seen.update(now)
        return new

    def wait_idle(self, timeout: float) -> bool:
        """Until every queue is empty and nothing is being delivered (True), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(o.idle() for o in self.outputs):
                return True
            time.sleep(0.005)
        return all(o.idle() for o in self.outputs)

    def close(self, timeout: float = 3.0) -> None:
        """Flush for at most ``timeout`` s in all, then stop every output; what could not be
        delivered in time is counted lost (reason ``shutdown``)."""
        deadline = time.monotonic() + timeout
        for out in self.outputs:
            out.request_stop()          # all flush at once
        for out in self.outputs:
            out.close(max(0.05, deadline - time.monotonic()))

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
