"""The watcher's event path on one core, without a kernel: raw ring-buffer records -> decode ->
process table -> rules -> JSON line -> hash-chained audit log, as `watch --json --output` runs
it, stage by stage.

    .venv/bin/python bench/bench_eventpath.py [--events 200000] [--dir /var/tmp] [--json]

The records are real ones (tests/fixtures/raw/records.jsonl, captured from the probes), repeated
with rising timestamps. Two mixes: ``flood`` - write opens and unlinks of new files, what a
flood the kernel cannot aggregate sends; ``mixed`` - every record type in turn. Each stage adds
one step to the one before; events/s are by CPU time of this process (the machine may be
shared). Goal (issue 18): at least 100,000 events/s through the whole path. The audit log
writes and syncs a batch every 256 lines by default (its policy's ``batch_records``); the last
two lines use larger batches. CPU time leaves out the wait for the disk: run the script with
`time` to see the wall clock.
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
from coi_sentinel.events import codec  # noqa: E402
from coi_sentinel.events.decode import Decoder  # noqa: E402
from coi_sentinel.pipeline import Pipeline  # noqa: E402
from coi_sentinel.rules import Engine, load_ruleset  # noqa: E402
from coi_sentinel.trace import make_header  # noqa: E402

GOAL = 100_000
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


def stages(raws: list[bytes], directory: Path) -> dict[str, float]:
    ruleset = load_ruleset(None)
    n = len(raws)
    out: dict[str, float] = {}

    def decode_only() -> None:
        decode = Decoder().decode
        for raw in raws:
            decode(raw)

    def chain(engine: bool, as_json: bool, audit: bool, batch: int | None = None) -> None:
        decode = Decoder().decode
        pipeline = Pipeline()
        log = sink = None
        if audit:
            policy = AuditPolicy() if batch is None else AuditPolicy(batch_records=batch)
            log = AuditLog(directory / f"audit-{time.monotonic_ns()}.jsonl", make_header("watch"),
                           events="all", policy=policy)
            pipeline.add_sink(log)
        if as_json:
            sink = open(os.devnull, "w")
            write = sink.write
            pipeline.add_sink(lambda ev, _p: write(codec.dumps(ev).decode() + "\n"))
        if engine:
            pipeline.add_sink(Engine(ruleset, on_alert=lambda a: None, table=pipeline.table))
        feed = pipeline.feed
        for raw in raws:
            feed(decode(raw))
        if log is not None:
            log.close()
        if sink is not None:
            sink.close()

    for label, fn in (("decode", decode_only),
                      ("+ process table", lambda: chain(False, False, False)),
                      ("+ rules", lambda: chain(True, False, False)),
                      ("+ JSON line", lambda: chain(True, True, False)),
                      ("+ audit log (whole path)", lambda: chain(True, True, True)),
                      ("  same, batches of 4096 lines", lambda: chain(True, True, True, 4096)),
                      ("  same, a batch per second", lambda: chain(True, True, True, 1 << 30))):
        out[label] = n / min(cpu(fn) for _ in range(2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the audit log is written")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="coi-bench-ep-") as d:
        for mix in ("flood", "mixed"):
            res[mix] = stages(records(mix, args.events), Path(d))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"event path on one core, {args.events:,} raw records per mix, events/s by CPU time "
          f"(goal: whole path >= {GOAL:,})")
    for mix, r in res.items():
        print(f"{mix}:")
        for label, eps in r.items():
            print(f"  {label:<30} {eps:>10,.0f}")


if __name__ == "__main__":
    main()
