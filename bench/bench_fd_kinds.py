"""What tracking pipe, fifo and pty ends costs (pipe.bpf.c; its dup and close bookkeeping), each
against baselines measured in the same run. Run as root:
    .venv/bin/python bench/bench_fd_kinds.py [--n 200000] [--repeats 5] [--json]

Loop: pipe2 + dup2 + ioctl(FIONREAD) + close x3 (bench/workloads.c `pipes`). Timed, alternating:
  none      no probes loaded (before and after the loaded runs, pooled)
  no-pipe   every probe family but pipe (pipe2 and ioctl unhooked), workload out of scope
  outside   every family, workload out of scope: what every process on the host pays
  inside    every family, workload in the watched cgroup
Prints each median, its spread (min-max over the repeats) and the ratios to `none`; the cost of
the pipe family out of scope is outside - no-pipe (close's map deletes are in both).

Then, unless --no-prog-stats: the kernel's own accounting of the hooks the loop runs
(kernel.bpf_stats_enabled on for the measurement only, then put back): ns per run of each
program, out of scope and in scope. Wall-clock ratios on a shared machine are noisy; these are
not (they count the programs' own run time only).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_probes import build, run_in  # noqa: E402

from coi_sentinel.monitor import Monitor, MonitorOptions  # noqa: E402
from coi_sentinel.probes.cgroups import WorkloadCgroup  # noqa: E402
from coi_sentinel.probes.hooks import FAMILIES  # noqa: E402


def timed(exe: Path, n: int, cg: WorkloadCgroup, mon: Monitor | None) -> float:
    return run_in(cg, [str(exe), "pipes", str(n)], mon) / n


#: the hooks the `pipes` loop runs: pipe.bpf.c's own, and the dup/close ones that now keep ends
PROG_HOOKS = ("sys_enter_pipe2", "sys_exit_pipe2", "sys_enter_ioctl", "sys_exit_ioctl",
              "sys_enter_dup2", "sys_exit_dup2", "sys_enter_close")
_BPF_OBJ_GET_INFO_BY_FD = 15
_SYS_BPF = 321                      # x86_64
_INFO_LEN = 256                     # struct bpf_prog_info: run_time_ns at 192, run_cnt at 200


def prog_run_stats(mon: Monitor) -> dict[str, tuple[int, int]]:
    """(run_time_ns, run_cnt) of each hook of PROG_HOOKS, from BPF_OBJ_GET_INFO_BY_FD."""
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    for hook in PROG_HOOKS:
        fn = mon.probes.bpf.funcs.get(f"tracepoint__syscalls__{hook}".encode())
        if fn is None:
            continue
        info = ctypes.create_string_buffer(_INFO_LEN)
        attr = ctypes.create_string_buffer(16)
        ctypes.memmove(attr, ctypes.byref(ctypes.c_uint32(fn.fd)), 4)
        ctypes.memmove(ctypes.addressof(attr) + 4, ctypes.byref(ctypes.c_uint32(_INFO_LEN)), 4)
        ctypes.memmove(ctypes.addressof(attr) + 8, ctypes.byref(ctypes.c_uint64(ctypes.addressof(info))), 8)
        if libc.syscall(_SYS_BPF, _BPF_OBJ_GET_INFO_BY_FD, attr, 16) != 0:
            raise OSError(ctypes.get_errno(), f"BPF_OBJ_GET_INFO_BY_FD {hook}")
        run_ns = int.from_bytes(info.raw[192:200], "little")
        cnt = int.from_bytes(info.raw[200:208], "little")
        out[hook] = (run_ns, cnt)
    return out


def prog_costs(exe: Path, n: int, inside: WorkloadCgroup, outside: WorkloadCgroup) -> dict:
    """ns per run of each hook, the loop out of scope then in scope."""
    knob = Path("/proc/sys/kernel/bpf_stats_enabled")
    old = knob.read_text().strip()
    res: dict[str, dict[str, float]] = {}
    with Monitor(MonitorOptions(cgroups=(str(inside.path),))) as mon:
        knob.write_text("1\n")
        try:
            for where, cg in (("outside", outside), ("inside", inside)):
                before = prog_run_stats(mon)
                timed(exe, n, cg, mon)
                after = prog_run_stats(mon)
                res[where] = {h: (after[h][0] - before[h][0]) / max(1, after[h][1] - before[h][1])
                              for h in after}
        finally:
            knob.write_text(old + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-prog-stats", action="store_true", help="skip the per-program run times")
    ap.add_argument("--prog-stats-only", action="store_true", help="only the per-program run times")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_fd_kinds.py needs root")
    res: dict[str, list[float]] = {"none": [], "no-pipe": [], "outside": [], "inside": []}
    with tempfile.TemporaryDirectory() as d, WorkloadCgroup("coi-bench-in") as inside, \
            WorkloadCgroup("coi-bench-out") as outside:
        exe = build(Path(d))
        costs = None if args.no_prog_stats else prog_costs(exe, args.n, inside, outside)
        if args.prog_stats_only:
            print(json.dumps(costs, indent=2) if args.json else _costs_table(costs))
            return
        no_pipe = tuple(f for f in FAMILIES if f != "pipe")
        res["none"] += [timed(exe, args.n, outside, None) for _ in range(args.repeats)]
        with Monitor(MonitorOptions(cgroups=(str(inside.path),), families=no_pipe)) as mon:
            res["no-pipe"] += [timed(exe, args.n, outside, mon) for _ in range(args.repeats)]
        with Monitor(MonitorOptions(cgroups=(str(inside.path),))) as mon:
            for _ in range(args.repeats):
                res["outside"].append(timed(exe, args.n, outside, mon))
                res["inside"].append(timed(exe, args.n, inside, mon))
            drops = mon.probes.drop_counts()
        res["none"] += [timed(exe, args.n, outside, None) for _ in range(args.repeats)]
    base = statistics.median(res["none"])
    out = {k: {"median_ns": statistics.median(v), "min_ns": min(v), "max_ns": max(v),
               "ratio": statistics.median(v) / base} for k, v in res.items()}
    out["pipe_family_outside_ns"] = out["outside"]["median_ns"] - out["no-pipe"]["median_ns"]
    out["drops"] = drops
    out["prog_ns_per_run"] = costs
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'config':<9} {'ns/iter':>9} {'min':>8} {'max':>8} {'ratio':>6}")
    for k in res:
        r = out[k]
        print(f"{k:<9} {r['median_ns']:>9.0f} {r['min_ns']:>8.0f} {r['max_ns']:>8.0f} {r['ratio']:>5.2f}x")
    print(f"pipe family, out of scope: {out['pipe_family_outside_ns']:+.0f} ns per iteration "
          f"(pipe2 + ioctl + their exits)")
    print(f"drops: {drops or 0}")
    if costs:
        print(_costs_table(costs))


def _costs_table(costs: dict) -> str:
    lines = [f"{'hook (ns per run)':<20} {'outside':>8} {'inside':>8}"]
    for hook in costs["outside"]:
        lines.append(f"{hook:<20} {costs['outside'][hook]:>8.0f} {costs['inside'][hook]:>8.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
