"""The watcher's event path on one core, without a kernel: raw ring-buffer records -> decode ->
process table and paths -> rules -> JSON lines -> hash-chained audit log, as `watch --json
--output` runs it, stage by stage.

    .venv/bin/python bench/bench_eventpath.py [--events 200000] [--dir /var/tmp] [--json]

The records are real ones (tests/fixtures/raw/records.jsonl, captured from the probes), repeated
with rising timestamps, and handled as the stream handles them: a poll's worth of records
(BULK_BUDGET) decoded, ordered by time, fed, then the pipeline's end of batch. Two mixes:
``flood`` - write opens and unlinks of new files, what a flood the kernel cannot aggregate
sends; ``mixed`` - every record type in turn (one event in 15 raises an alert: far more than
real work). Each stage adds one step to the one before, through the assembly `watch` runs
(coi_sentinel/sentinel.py: the sentinel's lane; cli/watch.py: the terminal): an alert is
recorded, written to the audit log and printed as `watch` does. events/s are by CPU time of this process (every thread:
the audit log's fsync thread too), best and median of three runs: the machine may be shared.
Goal (issue 18): at least 100,000 events/s through the whole path. The audit log writes a
batch every 4096 lines by default (its policy's ``batch_records``) and syncs it in its own
thread; the last line uses batches of 256 lines (the default before), for contrast. Not included: the aggregates' notes of each
file open and connect (they need the kernel's maps; bench_watch.py measures everything live).
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from coi_sentinel.audit import AuditLog, AuditPolicy  # noqa: E402
from coi_sentinel.cli.watch import Terminal  # noqa: E402
from coi_sentinel.events import codec  # noqa: E402
from coi_sentinel.events.decode import Decoder  # noqa: E402
from coi_sentinel.heap import collect_young_less, keep_freed_memory, settle  # noqa: E402
from coi_sentinel.pipeline import Pipeline  # noqa: E402
from coi_sentinel.probes.paths import PathResolver  # noqa: E402
from coi_sentinel.probes.stream import BULK_BUDGET  # noqa: E402
from coi_sentinel.outputs.cli import AlertSinks  # noqa: E402
from coi_sentinel.rules import load_ruleset  # noqa: E402
from coi_sentinel.sentinel import Lane, Sentinel  # noqa: E402
from coi_sentinel.trace import make_header  # noqa: E402

GOAL = 100_000
#: records per poll of the ring buffers (probes/stream.py: BULK_BUDGET)
BATCH = BULK_BUDGET
REPEATS = 3
RECORDS = ROOT / "tests" / "fixtures" / "raw" / "records.jsonl"


def records(mix: str, n: int) -> list[bytes]:
    """``n`` raw records of the mix; each a copy with its own timestamp (the header's first
    field, u64) so the stream moves on in time like a live one."""
    recs = [orjson.loads(line) for line in RECORDS.read_bytes().splitlines() if line.strip()]
    if mix == "flood":
        recs = [r for r in recs if r["expected"]["type"] in ("file_open", "unlink")]
    raws = [bytes.fromhex(r["raw"]) for r in recs]
    t0 = struct.unpack_from("<Q", raws[0])[0]
    out = []
    for i in range(n):
        raw = bytearray(raws[i % len(raws)])
        struct.pack_into("<Q", raw, 0, t0 + i * 10_000)       # 100k events/s of event time
        out.append(bytes(raw))
    return out


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def stages(raws: list[bytes], directory: Path) -> dict[str, tuple[float, float]]:
    """events/s of each stage: (best, median) of ``REPEATS`` runs."""
    ruleset = load_ruleset(None)
    n = len(raws)
    out: dict[str, tuple[float, float]] = {}
    batches = [raws[i:i + BATCH] for i in range(0, n, BATCH)]
    settle()                    # as watch does where its loop starts

    def decode_only() -> None:
        decode = Decoder().decode
        for raw in raws:
            decode(raw)

    def chain(engine: bool, as_json: bool, audit: bool, batch: int | None = None) -> None:
        """The assembly ``watch --json --output`` runs (cli/watch.py): the sentinel's one lane
        with the audit log, the engine and the terminal printing JSON lines (to /dev/null)."""
        decode = Decoder().decode
        source = _Source()
        pipeline = source.pipeline
        paths = PathResolver(pipeline.table)
        log = devnull = None
        listeners = []
        if audit:
            policy = AuditPolicy() if batch is None else AuditPolicy(batch_records=batch)
            log = AuditLog(directory / f"audit-{time.monotonic_ns()}.jsonl", make_header("watch"),
                           events="all", policy=policy)
        if as_json:
            devnull = open(os.devnull, "w")
            terminal = Terminal(AlertSinks(None, None, "json"), as_json=True, events=True)
            terminal.out = devnull
            terminal.lines = codec.JsonLines(devnull.buffer)
            pipeline.add_batch_end(terminal.end_batch)
            listeners.append(terminal)
        lane = Sentinel(source).add(Lane(pipeline.table, ruleset=ruleset if engine else None, log=log,
                                         listeners=listeners))
        feed, resolve, end = pipeline.feed, paths.resolve, pipeline.end_batch
        for chunk in batches:                   # as the stream: a poll's records, by time
            events = [decode(raw) for raw in chunk]
            events.sort(key=_ts)
            for ev in events:
                feed(resolve(ev))
            end()
        lane.close()
        if devnull is not None:
            devnull.close()

    for label, fn in (("decode", decode_only),
                      ("+ process table, paths", lambda: chain(False, False, False)),
                      ("+ rules", lambda: chain(True, False, False)),
                      ("+ JSON lines", lambda: chain(True, True, False)),
                      ("+ audit log (whole path)", lambda: chain(True, True, True)),
                      ("  same, batches of 256 lines", lambda: chain(True, True, True, 256))):
        runs = sorted(n / cpu(fn) for _ in range(REPEATS))
        out[label] = (runs[-1], runs[len(runs) // 2])
    return out


class _Source:
    """What the sentinel is added to: a pipeline (the stream's, fed here by hand)."""

    def __init__(self) -> None:
        self.pipeline = Pipeline()


def _ts(ev) -> int:
    return ev.ts_ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the audit log is written")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    keep_freed_memory()         # as the CLI does
    collect_young_less()
    res = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="coi-bench-ep-") as d:
        for mix in ("flood", "mixed"):
            res[mix] = stages(records(mix, args.events), Path(d))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"event path on one core, {args.events:,} raw records per mix, events/s by CPU time, "
          f"best and median of {REPEATS} (goal: whole path >= {GOAL:,})")
    for mix, r in res.items():
        print(f"{mix}:")
        for label, (best, median) in r.items():
            print(f"  {label:<30} {best:>10,.0f} {median:>10,.0f}")


if __name__ == "__main__":
    main()
