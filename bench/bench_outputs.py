"""Events through the rules with outputs on, against the same run without them; and with a
slow output. Single thread for the event path, no kernel needed.

    .venv/bin/python bench/bench_outputs.py [--events 300000] [--repeat 3] [--json]

The stream is bench_rules.py's synthetic agent mix; a bench rule (``bench_cc``, severity low,
every exec of ``cc``) is added to the bundled rules so that outputs get real work (about 1 alert
in 15 events). Six configurations over the same events, each with a fresh process table and
engine, fed as the live loop feeds them: a poll's worth (BULK_BUDGET) of events, then the
lane's tick (where a burst's alerts go to the delivery process in one write); the outputs are
started, and their delivery process ready, before the clock starts (as in watch and the daemon):

  baseline   pipeline (process table + engine), alerts counted only
  outputs    + three outputs: a rotated file, syslog over UDP to a socket this bench reads,
             an HTTP webhook (batches of 64) to a local receiver; + metrics (engine timed 1 in
             64, alerts counted, outputs read at scrape)
  slow       + the same webhook, but its receiver answers each POST after 100 ms
  otlp       + an OTLP/HTTP output to a local receiver instead of the webhook
  bundled-*  baseline and outputs again with the bundled rules only (alerts as rare as in use)

After a warm-up run, each configuration runs ``--repeat`` times, interleaved, and the median
(by CPU) is printed: events/s - wall clock, and per CPU-second of the event
loop's thread (what the event path itself costs, whatever else the machine runs) - and its
ratio to the baseline (goal: >= 100,000 events/s on one core,
and a ratio near 1: an output's slowness must not reach the event path), the emit latency per
alert (p50, p99, max: what the event loop pays: filters, one rendering, a frame queued or
written), the
latency per event (p50, p99, p99.9, max) and each output's delivered/lost counts (a slow output
loses what overflows its queue - counted - and never blocks). The outputs run in the delivery
process, so on a machine with a free core they do not compete with the event loop at all.
"""

from __future__ import annotations

import argparse
import http.server
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_rules import Stream  # noqa: E402

from coi_sentinel.events.proctable import ProcessTable  # noqa: E402
from coi_sentinel.heap import collect_young_less, settle  # noqa: E402
from coi_sentinel.outputs import OutputSet  # noqa: E402
from coi_sentinel.outputs.cli import AlertSinks  # noqa: E402
from coi_sentinel.outputs.metrics import Metrics  # noqa: E402
from coi_sentinel.probes.stream import BULK_BUDGET  # noqa: E402
from coi_sentinel.rules import Engine, load_ruleset  # noqa: E402

TARGET = 100_000

BENCH_RULE = """\
- rule: bench_cc
  description: every compiler run (bench only - gives the outputs work)
  severity: low
  events: [exec]
  condition: proc.name in (as, cc1)
  output: "cc ran (cmdline=%proc.cmdline parent=%proc.pname pid=%proc.pid)"
  tags: [bench]
  false_positives: everything
"""


class _Quiet(http.server.BaseHTTPRequestHandler):
    delay = 0.0
    proto = b""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.delay:
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_a) -> None:
        pass


def _http_server(delay: float) -> http.server.ThreadingHTTPServer:
    handler = type("H", (_Quiet,), {"delay": delay})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _udp_sink() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def drain() -> None:
        while True:
            sock.recv(65536)
    threading.Thread(target=drain, daemon=True).start()
    return sock


def _serve_receivers(conn) -> None:
    """The receivers, in a process of their own as real ones are (in the bench's process their
    threads would take the event loop's interpreter lock at every datagram and POST): sends
    their ports, serves until told to stop."""
    fast, slow, otlp = _http_server(0.0), _http_server(0.1), _http_server(0.0)
    udp = _udp_sink()
    conn.send({"fast": fast.server_address[1], "slow": slow.server_address[1],
               "otlp": otlp.server_address[1], "udp": udp.getsockname()[1]})
    conn.recv()


def one_run(events, ruleset, urls: list[str] | None, metrics: bool) -> dict:
    outs = OutputSet.from_options(urls) if urls else None
    met = Metrics() if metrics else None
    if met is not None and outs is not None:
        met.watch_outputs(outs)
    sinks = AlertSinks(outs, met, "json")
    if outs is not None:                # started long before a flood, as in watch and the daemon
        deadline = time.monotonic() + 30
        while not outs.ready() and time.monotonic() < deadline:
            time.sleep(0.01)
    alerts: Counter[str] = Counter()
    emit_ns: list[int] = []
    clock = time.perf_counter_ns

    def on_alert(alert) -> None:
        alerts[alert.rule] += 1
        if met is not None or outs is not None:
            t0 = clock()
            sinks.emit(alert)
            emit_ns.append(clock() - t0)

    table = ProcessTable()
    engine = Engine(ruleset, on_alert=on_alert, table=table)
    sink = sinks.timed(engine)
    apply = table.apply
    lat = [0] * len(events)
    batches = range(0, len(events), BULK_BUDGET)
    c0 = time.thread_time()
    t0 = time.perf_counter()
    for start in batches:               # as the live loop: a poll's events, then the lane's tick
        for i in range(start, min(start + BULK_BUDGET, len(events))):
            ev = events[i]
            e0 = clock()
            sink(ev, apply(ev))
            lat[i] = clock() - e0
        sinks.tick()
    dt = time.perf_counter() - t0
    cpu = max(time.thread_time() - c0, 1e-9)
    lat.sort()
    status = None
    sinks.close()                       # as watch ends: a bounded flush (3 s), then the status
    if outs is not None:
        status = {n: {"delivered": s["delivered"], "lost": s["lost"], "by_reason": s["lost_by_reason"]}
                  for n, s in outs.status().items()}
    emit_ns.sort()

    def pct(q: float) -> float:
        return round(emit_ns[min(len(emit_ns) - 1, int(q * len(emit_ns)))] / 1000, 1) if emit_ns else 0.0

    def lpct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] / 1000, 1)

    return {"events_per_s": round(len(events) / dt), "events_per_cpu_s": round(len(events) / cpu),
            "seconds": round(dt, 3), "alerts": sum(alerts.values()),
            "emit_us": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
            "event_us": {"p50": lpct(0.5), "p99": lpct(0.99), "p999": lpct(0.999), "max": lpct(1.0)},
            "outputs": status}


def run(n: int, repeat: int = 3) -> dict:
    events = Stream().build(n)
    with tempfile.TemporaryDirectory(prefix="coi-bench-outputs-") as tmp:
        rule = Path(tmp) / "bench.yaml"
        rule.write_text(BENCH_RULE)
        ruleset = load_ruleset([rule])
        bundled = load_ruleset(None)
        # forked before this process has any thread
        ctx = multiprocessing.get_context("fork")
        conn, child_conn = ctx.Pipe()
        receivers = ctx.Process(target=_serve_receivers, args=(child_conn,), daemon=True)
        receivers.start()
        try:
            port = conn.recv()
            file_url = f"file:{tmp}/alerts.jsonl?max_bytes=20M&backups=1&name=file"
            syslog_url = f"syslog+udp://127.0.0.1:{port['udp']}?format=falco&name=syslog"
            hook = f"http://127.0.0.1:{port['fast']}/?batch=64&name=webhook"
            slow_hook = f"http://127.0.0.1:{port['slow']}/?batch=64&queue=1000&name=slow-webhook"
            otlp_url = f"otlp+http://127.0.0.1:{port['otlp']}?name=otlp"
            settle()            # as watch does where its loop starts
            one_run(events[: len(events) // 4], ruleset, None, False)      # warm-up, not counted
            configs = {
                "baseline": (ruleset, None),
                "outputs": (ruleset, [file_url, syslog_url, hook]),
                "slow": (ruleset, [file_url, syslog_url, slow_hook]),
                "otlp": (ruleset, [file_url, syslog_url, otlp_url]),
                # the bundled rules alone: alerts as rare as in real use
                "bundled-baseline": (bundled, None),
                "bundled-outputs": (bundled, [file_url, syslog_url, hook]),
            }
            tries: dict[str, list[dict]] = {name: [] for name in configs}
            for _ in range(repeat):     # interleaved: a busy moment of the machine hits all alike
                for name, (rules, urls) in configs.items():
                    tries[name].append(one_run(events, rules, urls, urls is not None))
            runs = {name: sorted(t, key=lambda r: r["events_per_cpu_s"])[len(t) // 2]
                    for name, t in tries.items()}
        finally:
            conn.send("stop")
            receivers.join(5)
            if receivers.is_alive():
                receivers.kill()
    for name, r in runs.items():
        ref = runs["bundled-baseline" if name.startswith("bundled") else "baseline"]
        base, base_cpu = ref["events_per_s"], ref["events_per_cpu_s"]
        r["ratio_to_baseline"] = round(r["events_per_s"] / base, 3)
        r["cpu_ratio_to_baseline"] = round(r["events_per_cpu_s"] / base_cpu, 3)
        r["ratio_to_target"] = round(r["events_per_cpu_s"] / TARGET, 2)
    return {"events": n, "rules": len(ruleset), "cpu_count": os.cpu_count(), "repeat": repeat, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, the median is shown")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    collect_young_less()        # as the CLI does
    r = run(args.events, max(1, args.repeat))
    if args.json:
        print(json.dumps(r))
        return
    print(f"rules: {r['rules']} (bundled + bench_cc), events: {r['events']:,} synthetic, "
          f"median of {r['repeat']} runs each (by CPU)")
    for name, d in r["runs"].items():
        print(f"{name:<9} {d['events_per_s']:>9,} events/s wall ({d['ratio_to_baseline']}x baseline), "
              f"{d['events_per_cpu_s']:>9,} per CPU-second of the event loop ({d['cpu_ratio_to_baseline']}x "
              f"baseline, {d['ratio_to_target']}x the {TARGET:,} target); alerts {d['alerts']:,}")
        print(f"          emit us p50 {d['emit_us']['p50']} p99 {d['emit_us']['p99']} max {d['emit_us']['max']}")
        e = d["event_us"]
        print(f"          per event us: p50 {e['p50']} p99 {e['p99']} p99.9 {e['p999']} max {e['max']}")
        for out, s in (d["outputs"] or {}).items():
            lost = f" lost {s['lost']} {s['by_reason']}" if s["lost"] else ""
            print(f"          {out:<14} delivered {s['delivered']:,}{lost}")


if __name__ == "__main__":
    main()
