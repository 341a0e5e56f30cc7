"""`watch` as users run it - rules, JSON lines, the hash-chained audit log - timed against the
same loops without it, in one run. Run as root:

    .venv/bin/python bench/bench_watch.py [--quick] [--repeats 3] [--host-wide] [--json]

The watcher is the real command (``coi-sentinel watch --json --output FILE --rules MARKER``),
a process of its own reading the kernel, evaluating the bundled rules, writing every event and
alert to stdout (read by this script, as a terminal or a pipe would) and to the audit log. It
is scoped to a cgroup of this bench (``--host-wide``: the whole host, which on a shared machine
counts the others' work too).

Prints:
- start-up: seconds from the command to probes attached (its coverage line), two starts;
  RSS of the watcher at ready;
- loops (workloads.c: exec, open+write+close on one file, connect to a closed port, and a
  build: ``make -j2`` of 40 C files): median time without the watcher (before it starts),
  with it (the loop inside the watched cgroup) and out of scope (the watcher running, the loop
  in another cgroup); ratios; events/s the watcher wrote; drops (the watcher's own count);
- live throughput: a flood the kernel cannot aggregate (open+write+close+unlink of a new file
  each time): events/s the watcher handled and the share lost;
- exec -> alert line: an exec of a marker program every 2 ms, from the kernel's timestamp of
  the exec to the moment this script reads the alert line on the watcher's stdout; p50/p99,
  idle and beside the flood, and how many of the marker execs had no alert line;
- RSS of the watcher after --rss-events events.

Goals (issue 18): exec <= 1.10x, connect <= 1.10x, open+write+close <= 1.20x with 0 drops,
build <= 1.05x, out of scope <= 1.05x, >= 100k events/s live, exec -> alert line p99 <= 2 ms
idle and <= 20 ms beside the flood with no marker exec lost.
Peers, when installed (``--install-peers`` installs Debian's auditd and bpftrace for the run
and removes nothing else): the same loops with auditd recording execve, connect, open and
unlink (host-wide: audit rules cannot be scoped to a cgroup), and with a bpftrace script
printing the same syscalls (scoped to the bench cgroup like the watcher, unless --host-wide).
The machine may be shared: ratios are of medians of alternating runs; repeat and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coi_sentinel.host.cgroups import WorkloadCgroup  # noqa: E402

MARKER = "coi-bench-mark"
MARKER_RULES = f"""\
- rule: bench_exec_marker
  description: the bench's marker program ran (exec -> alert line latency)
  severity: info
  events: [exec]
  condition: proc.name = {MARKER}
  output: bench marker exec (proc=%proc.name pid=%proc.pid)
  tags: [T1059]
  false_positives: only the bench runs it
"""
GOALS = {"exec": 1.10, "connect": 1.10, "openwrite": 1.20, "build": 1.05}


def build_tools(tmp: Path) -> tuple[Path, Path, Path]:
    exe = tmp / "workloads"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "bench" / "workloads.c")], check=True)
    marker = tmp / MARKER
    shutil.copy("/bin/true", marker)
    src = tmp / "build"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}.c").write_text(f"int f{i}(int x) {{ return x * {i} + 1; }}\n")
    (src / "Makefile").write_text("all: " + " ".join(f"f{i}.o" for i in range(40)) +
                                  "\n%.o: %.c\n\tgcc -O1 -c $< -o $@\nclean:\n\trm -f *.o\n")
    return exe, marker, src


class Watcher:
    """`coi-sentinel watch` in a process of its own; its stdout read by a thread."""

    def __init__(self, tmp: Path, scope: list[str], rules: Path) -> None:
        self.audit = tmp / f"audit-{time.monotonic_ns()}.jsonl"
        argv = [sys.executable, "-m", "coi_sentinel.cli.main", "watch", "--json", "--output",
                str(self.audit), "--rules", str(rules), *scope]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        self.lines = 0
        self.marks: list[int] = []        # latency ns of each marker alert line
        self.lock = threading.Lock()
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()
        self.startup_s = time.monotonic() - self.t0
        if not first.startswith(b'{"record":"coverage"'):
            raise SystemExit(f"watch did not start: {first!r} {self.proc.stderr.read()!r}")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.rss_ready_mib = self.rss_mib()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        rest = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            n = data.count(b"\n", 0, cut)
            if MARKER.encode() in data[:cut] and b'"alert"' in data[:cut]:
                for line in data[:cut].splitlines():
                    if b'"bench_exec_marker"' in line:
                        d = json.loads(line)
                        with self.lock:
                            self.marks.append(now - d["ts_ns"])
            with self.lock:
                self.lines += n

    def rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        self.reader.join(timeout=10)
        for line in err.splitlines():
            if line.startswith(b'{"record":"summary"'):
                return json.loads(line)
        return {}


def run_in(cg: WorkloadCgroup, argv: list[str], cwd: Path | None = None) -> float:
    """Run argv inside cg; its time in seconds (the loop's own ns figure when it prints one)."""
    procs = cg.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=enter, cwd=cwd)
    took = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"workload {argv} failed: {p.returncode}")
    out = p.stdout.strip()
    return int(out) / 1e9 if out.isdigit() else took


def loops(exe: Path, src: Path, shm: Path, port: int, scale: int) -> dict[str, list[str]]:
    return {"exec": [str(exe), "exec", str(4000 // scale)],
            "openwrite": [str(exe), "openwrite", str(300_000 // scale), str(shm / "ow.bin")],
            "connect": [str(exe), "connect", str(100_000 // scale), str(port)],
            "build": ["make", "-s", "-j2", "-B", "-C", str(src)]}


AUDIT_RULE = ["-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-S", "execveat", "-S", "connect",
              "-S", "openat", "-S", "open", "-S", "creat", "-S", "unlink", "-S", "unlinkat", "-k", "coi-bench"]
BPFTRACE = """\
tracepoint:syscalls:sys_enter_execve {FILTER} { printf("exec %d %s\\n", pid, str(args->filename)); }
tracepoint:syscalls:sys_enter_connect {FILTER} { printf("connect %d %d\\n", pid, args->fd); }
tracepoint:syscalls:sys_enter_openat {FILTER} { printf("open %d %s\\n", pid, str(args->filename)); }
tracepoint:syscalls:sys_enter_unlinkat {FILTER} { printf("unlink %d %s\\n", pid, str(args->pathname)); }
"""


def install_peers() -> None:
    """Debian's auditd and bpftrace, for this run (their services are not started)."""
    policy = Path("/usr/sbin/policy-rc.d")
    own = not policy.exists()
    if own:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "auditd", "bpftrace"],
                       check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    finally:
        if own:
            policy.unlink()


class Auditd:
    """auditd started by this bench, with one rule set of ours; stopped and removed after."""

    name = "auditd"

    @staticmethod
    def available() -> bool:
        return shutil.which("auditd") is not None and shutil.which("auditctl") is not None

    def __enter__(self) -> "Auditd":
        pidfile = Path("/run/auditd.pid")
        if pidfile.exists():
            raise SystemExit("auditd already runs here: not measuring it beside another one")
        subprocess.run(["auditd"], check=True)
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = int(pidfile.read_text().split()[0])
        subprocess.run(["auditctl", *AUDIT_RULE], check=True, stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["auditctl", "-d", *AUDIT_RULE[1:]], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


class Bpftrace:
    name = "bpftrace"

    def __init__(self, tmp: Path, cgroup: Path | None) -> None:
        filt = "" if cgroup is None else f'/cgroup == cgroupid("{cgroup}")/'
        self.script = tmp / "peer.bt"
        self.script.write_text(BPFTRACE.replace("{FILTER}", filt))
        self.out = tmp / "bpftrace.out"

    @staticmethod
    def available() -> bool:
        return shutil.which("bpftrace") is not None

    def __enter__(self) -> "Bpftrace":
        self.proc = subprocess.Popen(["bpftrace", "-o", str(self.out), str(self.script)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:      # "Attaching N probes..." is its first line
            if self.out.exists() and self.out.stat().st_size > 0:
                return self
            if self.proc.poll() is not None:
                raise SystemExit(f"bpftrace failed: {self.proc.stderr.read()!r}")
            time.sleep(0.05)
        raise SystemExit("bpftrace did not attach within 60 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def marker_latency(w: Watcher, inside: WorkloadCgroup, marker: Path, n: int, pace_s: float) -> dict:
    with w.lock:
        w.marks.clear()
    procs = inside.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    for _ in range(n):
        subprocess.run([str(marker)], preexec_fn=enter)
        time.sleep(pace_s)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(w.marks) < n:
        time.sleep(0.05)
    with w.lock:
        lat = sorted(w.marks)
    if not lat:
        return {"n": n, "seen": 0}
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] / 1e6  # noqa: E731
    return {"n": n, "seen": len(lat), "lost": n - len(lat), "p50_ms": q(0.5), "p99_ms": q(0.99),
            "max_ms": lat[-1] / 1e6}


def flood(exe: Path, inside: WorkloadCgroup, shm: Path, count: int) -> subprocess.Popen:
    procs = inside.path / "cgroup.procs"

    def enter() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    return subprocess.Popen([str(exe), "openunlink", str(count), str(shm)], stdout=subprocess.DEVNULL,
                            preexec_fn=enter)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the iterations, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--host-wide", action="store_true", help="watch the whole host, not a cgroup")
    ap.add_argument("--rss-events", type=int, default=1_000_000, help="events before the last RSS figure")
    ap.add_argument("--install-peers", action="store_true", help="apt-get install auditd and bpftrace first")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_watch.py needs root")
    scale = 10 if args.quick else 1
    repeats = 1 if args.quick else args.repeats
    res: dict = {"loops": {}, "startup_s": [], "latency": {}}
    with tempfile.TemporaryDirectory() as d, WorkloadCgroup("coi-bench-w-in") as inside, \
            WorkloadCgroup("coi-bench-w-out") as outside, \
            tempfile.TemporaryDirectory(prefix="coi-bench-w-", dir="/dev/shm") as shm_dir:
        tmp = Path(d)
        shm = Path(shm_dir)
        exe, marker, src = build_tools(tmp)
        rules = tmp / "marker.yaml"
        rules.write_text(MARKER_RULES)
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        scope = [] if args.host_wide else ["--cgroup", str(inside.path)]
        work = loops(exe, src, shm, port, scale)
        base = {k: [] for k in work}
        for _ in range(repeats):
            for k, argv in work.items():
                base[k].append(run_in(outside, argv))
        # ---- first watcher: the loops, idle latency
        w = Watcher(tmp, scope, rules)
        res["startup_s"].append(w.startup_s)
        res["rss_ready_mib"] = w.rss_ready_mib
        watched = {k: [] for k in work}
        outs = {k: [] for k in work}
        per_loop_events: dict[str, int] = {}
        try:
            for k, argv in work.items():
                l0 = w.lines
                t_in = 0.0
                for _ in range(repeats):
                    t = time.monotonic()
                    watched[k].append(run_in(inside, argv))
                    t_in += time.monotonic() - t
                    outs[k].append(run_in(outside, argv))
                time.sleep(0.3)
                per_loop_events[k] = w.lines - l0
                res["loops"][k] = {"events": w.lines - l0, "events_per_s": (w.lines - l0) / t_in}
            res["latency"]["idle"] = marker_latency(w, inside, marker, 200 // scale * 5 // 5, 0.002)
        finally:
            s1 = w.stop()
        res["drops_loops"] = s1.get("drops", {})
        for k in work:
            b, wi, o = statistics.median(base[k]), statistics.median(watched[k]), statistics.median(outs[k])
            res["loops"][k].update(base_s=b, watched_s=wi, outside_s=o, ratio=wi / b, outside_ratio=o / b,
                                   goal=GOALS.get(k))
        # ---- second watcher: the flood (throughput, losses, latency beside it), RSS after it
        w = Watcher(tmp, scope, rules)
        res["startup_s"].append(w.startup_s)
        try:
            count = max(args.rss_events // 2, 10_000) // scale     # ~2 events per iteration
            l0, t0 = w.lines, time.monotonic()
            fl = flood(exe, inside, shm, count)
            res["latency"]["flood"] = marker_latency(w, inside, marker, 200 // scale, 0.002)
            fl.wait()
            took = time.monotonic() - t0
            time.sleep(0.5)
            res["flood"] = {"iterations": count, "seconds": took, "events_written": w.lines - l0,
                            "events_per_s": (w.lines - l0) / took}
            res["rss_after_mib"] = w.rss_mib()
            res["events_total"] = w.lines
        finally:
            s2 = w.stop()
        res["drops_flood"] = s2.get("drops", {})
        # ---- peers: the same loops beside auditd and bpftrace
        if args.install_peers:
            install_peers()
        res["peers"] = {}
        cgroup = None if args.host_wide else inside.path
        for peer in (Auditd(), Bpftrace(tmp, cgroup)):
            if not peer.available():
                res["peers"][peer.name] = None
                continue
            times = {k: [] for k in work}
            with peer:
                for k, argv in work.items():
                    for _ in range(repeats):
                        times[k].append(run_in(inside, argv))
            res["peers"][peer.name] = {k: statistics.median(v) / statistics.median(base[k])
                                       for k, v in times.items()}
        seen = sum(s2.get("events", {}).values())
        lost = sum(res["drops_flood"].values())
        res["flood"]["handled"] = seen
        res["flood"]["lost_share"] = lost / (seen + lost) if seen + lost else 0.0
    if args.json:
        print(json.dumps(res, indent=2))
        return
    where = "host-wide" if args.host_wide else "scoped to the bench cgroup"
    print(f"watch --json --output --rules (bundled + marker), {where}; medians of {repeats} runs")
    print(f"start-up to attached: {', '.join(f'{s:.2f} s' for s in res['startup_s'])}; "
          f"RSS at ready {res['rss_ready_mib']:.0f} MiB")
    print(f"{'loop':<10} {'base s':>8} {'watched':>8} {'ratio':>6} {'goal':>5} {'outside':>8} {'ratio':>6} "
          f"{'events/s':>9}")
    for k, r in res["loops"].items():
        goal = f"{r['goal']:.2f}" if r["goal"] else "-"
        print(f"{k:<10} {r['base_s']:>8.3f} {r['watched_s']:>8.3f} {r['ratio']:>5.2f}x {goal:>5} "
              f"{r['outside_s']:>8.3f} {r['outside_ratio']:>5.2f}x {r['events_per_s']:>9,.0f}")
    print(f"drops during the loops: {res['drops_loops'] or 0}")
    f = res["flood"]
    print(f"unaggregatable flood: {f['iterations']:,} iterations in {f['seconds']:.1f} s, "
          f"{f['events_per_s']:,.0f} events/s written, {f['lost_share']:.1%} lost "
          f"(drops {res['drops_flood'] or 0})")
    for k, v in res["latency"].items():
        if v.get("seen"):
            print(f"exec -> alert line, {k:<5}: n={v['n']} p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms "
                  f"max {v['max_ms']:.2f} ms, {v['lost']} marker execs without an alert line")
        else:
            print(f"exec -> alert line, {k}: no alert line seen of {v['n']}")
    print(f"RSS after {res['events_total']:,} events written: {res['rss_after_mib']:.0f} MiB")
    for name, ratios in res["peers"].items():
        if ratios is None:
            print(f"peer {name}: not installed (--install-peers)")
        else:
            print(f"peer {name:<8}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
