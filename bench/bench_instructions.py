"""Instructions per event of the event path, this tree against a baseline revision, counted by
valgrind (cachegrind) in the same run: a figure the machine's load cannot move.

    .venv/bin/python bench/bench_instructions.py [--base REV] [--workloads corpus,replay,stream] [--json]

The timing benches (bench_replay.py, bench_rules.py, bench_outputs.py) swing by 20-30 % with the
virtual machine's host between runs of the same tree, which hides a change worth 5 %. This bench
counts the instructions user space executes instead. Each workload runs in a process of its own
under ``valgrind --tool=cachegrind --cache-sim=no``, twice per tree: once set up only and once
set up and then run, so the difference is the run's alone, divided by its events. The baseline
(default ``HEAD``: the last commit, against the working tree) is exported with ``git archive``
to a temporary folder and measured the same way, in the same run. Workloads, each on the
bundled rules:

  corpus   the rule test corpus (rules/tests/traces/, 79k events) decoded first, then fed
           through pipeline + engine (what bench_replay.py calls "pipeline + engine only")
  replay   the same corpus replayed end to end from its file: reading, decoding, pipeline,
           engine (bench_replay.py's "replay, plain trace")
  stream   bench_rules.py's synthetic agent mix (100k events) through table + engine
  eventpath  what ``watch --json --output`` does with raw ring-buffer records (bench_eventpath.py's
           whole path, flood mix, 50k records): decode, process table and paths, rules, JSON
           lines (to /dev/null), the hash-chained audit log (a temporary folder), in the
           stream's batches; the audit log's fsync thread is counted with the rest
  eventmix   the same on bench_eventpath.py's mixed mix (every record type; one alert in 15)

A tree whose ``coi_sentinel.heap`` has ``settle`` runs as the CLI runs it (young collections
less often, set-up frozen before the loop); an older tree as it was. Instructions are not
time: decoding (orjson, C) runs at a higher rate per cycle than the engine's Python, so a
ratio here is the direction and rough size of a change, not its speed-up; time it with the
timing benches on a quiet machine. Two identical trees differ by up to ~1.5 % (hash seeds, the
order dicts fill in): a smaller ratio is no change. About two minutes a workload (two
processes at a time).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"

#: run by each measured process: argv = tree, workload, runs (0: set-up only), a folder of the
#: parent's for the concatenated corpus (removed with it)
WORKLOAD = r'''
import os, sys
root, what, runs, workdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path[:0] = [root, root + "/bench"]
from coi_sentinel import heap
product = hasattr(heap, "settle")
if product:
    heap.collect_young_less()
from pathlib import Path
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.replay import replay
from coi_sentinel.rules import Engine, load_ruleset
from coi_sentinel.trace import read_events
import bench_replay
ruleset = load_ruleset(None)


class Live:
    """The assembly `watch --json --output` runs (bench_eventpath.py's whole path), set up
    here so that the run is the feeding alone."""

    def __init__(self, root, mix, workdir):
        import bench_eventpath as bep
        from coi_sentinel.audit import AuditLog
        from coi_sentinel.cli.watch import Terminal
        from coi_sentinel.events import codec
        from coi_sentinel.events.decode import Decoder
        from coi_sentinel.outputs.cli import AlertSinks
        from coi_sentinel.probes.paths import PathResolver
        from coi_sentinel.sentinel import Lane, Sentinel
        from coi_sentinel.trace import make_header
        raws = bep.records(mix, 50_000)
        self.batches = [raws[i:i + bep.BATCH] for i in range(0, len(raws), bep.BATCH)]
        self.n = len(raws)
        self.decode = Decoder().decode
        source = bep._Source()
        self.pipeline = source.pipeline
        self.paths = PathResolver(self.pipeline.table)
        log = AuditLog(Path(workdir) / f"audit-{os.getpid()}.jsonl", make_header("watch"), events="all")
        self.devnull = open(os.devnull, "w")
        terminal = Terminal(AlertSinks(None, None, "json"), as_json=True, events=True)
        terminal.out = self.devnull
        terminal.lines = codec.JsonLines(self.devnull.buffer)
        self.pipeline.add_batch_end(terminal.end_batch)
        self.lane = Sentinel(source).add(Lane(self.pipeline.table, ruleset=ruleset, log=log,
                                              listeners=[terminal]))

    def run(self):
        decode, feed, resolve, end = self.decode, self.pipeline.feed, self.paths.resolve, self.pipeline.end_batch
        ts = lambda ev: ev.ts_ns
        for chunk in self.batches:
            events = [decode(raw) for raw in chunk]
            events.sort(key=ts)
            for ev in events:
                feed(resolve(ev))
            end()
        self.lane.close()
        return self.n
events, plain = [], Path(workdir) / f"corpus-{os.getpid()}.jsonl"
bench_replay.concatenate(sorted(bench_replay.TRACES.glob("*.jsonl*")), plain, 1)
if what == "corpus":
    events = list(read_events([plain]))
elif what == "stream":
    from bench_rules import Stream
    events = Stream().build(100_000)
elif what in ("eventpath", "eventmix"):
    live = Live(root, "flood" if what == "eventpath" else "mixed", workdir)
if product:
    heap.settle()
n = 0
for _ in range(runs):
    if what in ("eventpath", "eventmix"):
        n = live.run()
        continue
    if what == "replay":
        n = replay([plain], ruleset).events
        continue
    pipeline = Pipeline()
    engine = Engine(ruleset, table=pipeline.table)
    pipeline.add_sink(engine)
    pipeline.feed_all(events)
    n = len(events)
print("EVENTS", n)
'''

WORKLOADS = ("corpus", "replay", "stream", "eventpath", "eventmix")


def count(tree: Path, workload: str, runs: int, script: Path) -> tuple[int, int]:
    """(instructions, events) of one process under cachegrind."""
    proc = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         str(PYTHON), str(script), str(tree), workload, str(runs), str(script.parent)],
        capture_output=True, text=True, check=False)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    events = re.search(r"^EVENTS (\d+)$", proc.stdout, re.M)
    if proc.returncode != 0 or refs is None or events is None:
        raise SystemExit(f"bench_instructions: {workload} in {tree} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(events.group(1))


def per_event(tree: Path, workload: str, script: Path, pool: concurrent.futures.Executor) -> dict:
    setup = pool.submit(count, tree, workload, 0, script)
    full = pool.submit(count, tree, workload, 1, script)
    (i0, _), (i1, events) = setup.result(), full.result()
    return {"events": events, "instructions": i1 - i0, "per_event": round((i1 - i0) / events)}


def export(rev: str, into: Path) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"bench_instructions: git archive {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def run(base: str, workloads: list[str]) -> dict:
    out: dict = {"base": base, "workloads": {}}
    with tempfile.TemporaryDirectory(prefix="coi-bench-instr-") as tmp:
        base_tree = Path(tmp) / "base"
        base_tree.mkdir()
        export(base, base_tree)
        script = Path(tmp) / "workload.py"
        script.write_text(WORKLOAD)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for workload in workloads:
                before = per_event(base_tree, workload, script, pool)
                after = per_event(ROOT, workload, script, pool)
                out["workloads"][workload] = {
                    "base": before, "tree": after,
                    "ratio": round(after["per_event"] / before["per_event"], 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="the baseline revision (default: HEAD)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"comma-separated, of {', '.join(WORKLOADS)}")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}")
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions: needs valgrind (apt-get install valgrind)")
    out = run(args.base, workloads)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"instructions per event (valgrind), this tree against {args.base}, bundled rules")
    for workload, r in out["workloads"].items():
        print(f"  {workload:<9} {r['base']['per_event']:>8,} -> {r['tree']['per_event']:>8,}  "
              f"x{r['ratio']:.3f}  ({r['tree']['events']:,} events)")


if __name__ == "__main__":
    main()
