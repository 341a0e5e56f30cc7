"""Audit log write throughput next to raw JSONL writing.

    .venv/bin/python bench/bench_audit.py [--events 200000] [--dir /var/tmp]

Writes the same events (a mix of exec, connect and file_open, ~270 bytes a line) several ways
and prints records/s and the ratio to raw JSONL (``codec.dumps`` into a buffered file, one fsync
at the end). The directory should be on the disk the logs will live on: fsync cost is the point
(on tmpfs it is free). No assertions: numbers to compare between changes and machines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coi_sentinel.audit import AuditLog, AuditPolicy, FlightRecorder, verify  # noqa: E402
from coi_sentinel.events import codec, model  # noqa: E402
from coi_sentinel.events.model import Event  # noqa: E402
from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL  # noqa: E402
from coi_sentinel.trace import TraceWriter, make_header  # noqa: E402


def make_events(n: int) -> list[Event]:
    out = []
    for i in range(n):
        head = {"ts_ns": 10**12 + i * 1000, "pid": 2000 + i % 500, "tid": 2000 + i % 500,
                "ppid": 1999, "uid": 1001000, "gid": 1001000, "comm": "python3",
                "cgroup_id": 4242 + i % 4, "scope_id": 4200 + i % 4, "container": f"agent-{i % 4}"}
        kind = i % 3
        if kind == 0:
            d = {"type": "exec", "filename": "/usr/bin/git", "argv": ["git", "commit", "-m", f"change {i}"],
                 "argc": 4, "errno": 0, "fd": -100, "flags": 0}
        elif kind == 1:
            d = {"type": "connect", "fd": 5, "family": "inet", "daddr": "140.82.112.3", "dport": 443,
                 "errno": 115}
        else:
            d = {"type": "file_open", "path": f"/home/agent/project/src/module_{i % 97}.py",
                 "flags": 577, "mode": 0o644, "fd": 7, "errno": 0, "kind": "write", "dirfd": -100}
        d.update(head)
        for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[d["type"]]]):   # newer fields: 0
            d.setdefault(f.name, {"int": 0, "str": "", "bool": False}.get(str(f.type), ()))
        out.append(codec.from_dict(d))
    return out


def raw_jsonl(path: Path, events: list[Event]) -> None:
    with open(path, "wb") as f:
        for ev in events:
            f.write(codec.dumps(ev) + b"\n")
        f.flush()
        os.fsync(f.fileno())


def trace_writer(batch: int) -> Callable[[Path, list[Event]], None]:
    def run(path: Path, events: list[Event]) -> None:
        with TraceWriter(path, make_header("bench"), batch_records=batch) as w:
            for ev in events:
                w.write_event(ev)
    return run


def audit_log(batch: int, fsync: bool = True) -> Callable[[Path, list[Event]], None]:
    policy = AuditPolicy(batch_records=batch, fsync=fsync, max_bytes=None, max_age=None,
                         retention=None)

    def run(path: Path, events: list[Event]) -> None:
        with AuditLog(path, make_header("bench"), policy=policy) as log:
            for ev in events:
                log.write_event(ev)
    return run


def audit_rotating(path: Path, events: list[Event]) -> None:
    policy = AuditPolicy(max_bytes=8 << 20, max_age=None, retention=None)
    with AuditLog(path, make_header("bench"), policy=policy) as log:
        for ev in events:
            log.write_event(ev)


def recorder_only(path: Path, events: list[Event]) -> None:
    rec = FlightRecorder(seconds=30, max_events=2000)
    for ev in events:
        rec.add(ev)


def timed(fn: Callable[[Path, list[Event]], None], directory: Path, events: list[Event]) -> tuple[float, int]:
    work = Path(tempfile.mkdtemp(dir=directory, prefix="bench-audit-"))
    try:
        path = work / "out.jsonl"
        t0 = time.perf_counter()
        fn(path, events)
        elapsed = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in work.iterdir())
        return elapsed, size
    finally:
        shutil.rmtree(work)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--dir", default="/var/tmp", help="where to write (default: /var/tmp)")
    args = ap.parse_args()
    directory = Path(args.dir)
    events = make_events(args.events)
    few = events[: max(1, args.events // 50)]

    cases: list[tuple[str, Callable[[Path, list[Event]], None], list[Event]]] = [
        ("raw JSONL, buffered, 1 fsync", raw_jsonl, events),
        ("trace, fsync per 256", trace_writer(256), events),
        ("audit, no fsync", audit_log(256, fsync=False), events),
        ("audit, fsync per 1024", audit_log(1024), events),
        ("audit, fsync per 256 (default)", audit_log(256), events),
        ("audit, fsync per 64", audit_log(64), events),
        ("audit, 256, rotate at 8 MiB", audit_rotating, events),
        ("audit, fsync every record", audit_log(1), few),
        ("flight recorder only (memory)", recorder_only, events),
    ]
    print(f"{len(events)} events ({sum(len(codec.dumps(e)) + 1 for e in events) / len(events):.0f} "
          f"B/line raw) in {directory}, Python {sys.version.split()[0]}")
    print(f"{'case':<34} {'records/s':>12} {'vs raw':>8} {'MiB':>7}")
    base = None
    for name, fn, evs in cases:
        elapsed, size = timed(fn, directory, evs)
        rate = len(evs) / elapsed
        base = base or rate
        print(f"{name:<34} {rate:>12,.0f} {rate / base:>8.2f} {size / 2**20:>7.1f}")

    work = Path(tempfile.mkdtemp(dir=directory, prefix="bench-audit-"))
    try:
        audit_log(256, fsync=False)(work / "v.jsonl", events)
        t0 = time.perf_counter()
        report = verify([work / "v.jsonl"])
        elapsed = time.perf_counter() - t0
        print(f"{'verify':<34} {report.lines / elapsed:>12,.0f} lines/s (intact: {report.ok})")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
