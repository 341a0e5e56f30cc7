"""Probe overhead, throughput, drops and exec latency, each against a baseline measured in
the same run. Run as root:  .venv/bin/python bench/bench_probes.py [--quick] [--json]

Prints, for each loop (exec 5,000; open+write+close 300,000 on one file; connect 100,000 to a
closed loopback port): time without the watcher, with it (workload inside the watched cgroup),
and with it while the workload runs outside the watched cgroups; the ratios; events/s consumed;
drops. Then exec-event latency (kernel timestamp -> handled in Python) p50/p99, idle and beside
an open+write flood. Targets (issue 2): exec <= 1.15x, connect <= 1.15x, open+write+close
<= 1.25x with zero drops, outside scope <= 1.05x, exec latency p50 <= 1 ms, p99 <= 10 ms.
Each timing is the median of REPEATS runs, alternating with and without.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coi_sentinel.monitor import Monitor, MonitorOptions  # noqa: E402
from coi_sentinel.probes.cgroups import WorkloadCgroup  # noqa: E402


def build(tmp: Path) -> Path:
    exe = tmp / "workloads"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "bench" / "workloads.c")], check=True)
    return exe


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_in(cg: WorkloadCgroup, argv: list[str], mon: Monitor | None) -> int:
    """Run argv inside cg; keep polling the monitor meanwhile. Returns the loop time in ns."""
    procs = cg.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    p = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=enter)
    if mon is None:
        out, _ = p.communicate()
    else:
        while p.poll() is None:
            mon.poll(10)
        out = p.stdout.read()
        mon.poll(10)
    if p.returncode != 0:
        raise SystemExit(f"workload {argv} failed: {p.returncode}")
    return int(out.strip())


def measure(exe: Path, loop: list[str], repeats: int, mon: Monitor, inside: WorkloadCgroup,
            outside: WorkloadCgroup) -> dict:
    base, watched, out_scope = [], [], []
    ev0 = sum(mon.stream.stats.events.values())
    t_watch = 0.0
    for _ in range(repeats):
        base.append(run_in(outside, [str(exe)] + loop, None))
        t = time.monotonic()
        watched.append(run_in(inside, [str(exe)] + loop, mon))
        t_watch += time.monotonic() - t
        out_scope.append(run_in(outside, [str(exe)] + loop, mon))
    events = sum(mon.stream.stats.events.values()) - ev0
    b, w, o = statistics.median(base), statistics.median(watched), statistics.median(out_scope)
    return {"loop": " ".join(loop[:2]), "base_ms": b / 1e6, "watched_ms": w / 1e6,
            "outside_ms": o / 1e6, "ratio": w / b, "outside_ratio": o / b,
            "events": events, "events_per_s": events / t_watch if t_watch else 0.0}


def latency(exe: Path, mon: Monitor, inside: WorkloadCgroup, flood: bool, tmp: Path) -> dict:
    mon.stream.stats.exec_latency_ns.clear()
    flood_proc = None
    if flood:
        procs = inside.path / "cgroup.procs"

        def enter() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        flood_proc = subprocess.Popen([str(exe), "openwrite", "100000000", "/dev/shm/coi-bench-flood.bin"],
                                      stdout=subprocess.DEVNULL, preexec_fn=enter)
    try:
        run_in(inside, [str(exe), "execpace", "1000", "2000"], mon)
    finally:
        if flood_proc is not None:
            flood_proc.kill()
            flood_proc.wait()
            mon.poll(10)
            Path("/dev/shm/coi-bench-flood.bin").unlink(missing_ok=True)
    lat = sorted(x for x in mon.stream.stats.exec_latency_ns)
    if not lat:
        return {"n": 0}
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] / 1e6  # noqa: E731
    return {"n": len(lat), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": lat[-1] / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the iterations, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_probes.py needs root")
    scale = 10 if args.quick else 1
    repeats = 1 if args.quick else args.repeats
    results: dict = {"loops": [], "latency": {}}
    with tempfile.TemporaryDirectory() as d, WorkloadCgroup("coi-bench-in") as inside, \
            WorkloadCgroup("coi-bench-out") as outside:
        tmp = Path(d)
        exe = build(tmp)
        port = closed_port()
        # the file lives on tmpfs: on ext4 an O_TRUNC open costs ~130 us and hides the probes
        shm = Path(tempfile.mkdtemp(prefix="coi-bench-", dir="/dev/shm"))
        loops = [["exec", str(5000 // scale)],
                 ["openwrite", str(300000 // scale), str(shm / "ow.bin")],
                 ["connect", str(100000 // scale), str(port)]]
        with Monitor(MonitorOptions(cgroups=(str(inside.path),))) as mon:
            for loop in loops:
                results["loops"].append(measure(exe, loop, repeats, mon, inside, outside))
            results["latency"]["idle"] = latency(exe, mon, inside, False, tmp)
            results["latency"]["flood"] = latency(exe, mon, inside, True, tmp)
            results["drops"] = mon.probes.drop_counts()
            results["events"] = dict(mon.stream.stats.events)
        for f in shm.iterdir():
            f.unlink()
        shm.rmdir()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'loop':<16} {'base ms':>9} {'watched':>9} {'ratio':>6} {'outside':>8} {'ratio':>6} {'events/s':>9}")
    for r in results["loops"]:
        print(f"{r['loop']:<16} {r['base_ms']:>9.1f} {r['watched_ms']:>9.1f} {r['ratio']:>5.2f}x "
              f"{r['outside_ms']:>8.1f} {r['outside_ratio']:>5.2f}x {r['events_per_s']:>9.0f}")
    for k, v in results["latency"].items():
        if v.get("n"):
            print(f"exec latency {k:<6} n={v['n']:<5} p50 {v['p50_ms']:.3f} ms  p99 {v['p99_ms']:.3f} ms  "
                  f"max {v['max_ms']:.3f} ms")
    print(f"drops: {results['drops'] or 0}")
    print(f"events: {results['events']}")


if __name__ == "__main__":
    main()
