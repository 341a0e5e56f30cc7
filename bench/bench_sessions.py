"""Session start and end latency, through the real `coi-sentinel run` and a real Incus daemon.

    .venv/bin/python bench/bench_sessions.py [--runs 5] [--cases busybox,busybox-monitored,debian]

For each case, ``--runs`` headless runs of ``run -- sh -c 'echo started; echo ending'`` on a
fresh workspace, measured from the host:

* start: from spawning ``coi-sentinel run`` to the agent's first output line ("started"),
  i.e. config, container create + start, monitor start, staging, exec;
* end: from the agent's last line ("ending") to the container being gone from the API
  (ephemeral: stopped and deleted), polled every 10 ms on its own connection;
* exit: from "ending" to the ``run`` process exiting.

Prints medians (and min-max) per case and writes bench/out/sessions.json. Cases whose image or
feature is missing are skipped with the reason. Needs root. No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from coi_sentinel.errors import IncusError, SessionError  # noqa: E402
from coi_sentinel.sessions import incus, naming  # noqa: E402

CASES = {
    "busybox": {"image": "coi/busybox", "monitoring": False},
    "busybox-monitored": {"image": "coi/busybox", "monitoring": True},
    "debian": {"image": "coi/debian12", "monitoring": False},
}


def _exists(client, name: str) -> bool:
    try:
        incus.raw_get(client, f"instances/{name}")
        return True
    except IncusError as err:
        if "not found" in str(err).lower():
            return False
        raise


def one_run(root: Path, case: dict, i: int) -> dict:
    ws = root / f"ws{i}"
    ws.mkdir()
    os.chown(ws, 1000, 1000)
    home = root / f"home{i}"
    (home / ".config/coi-sentinel").mkdir(parents=True)
    (home / ".config/coi-sentinel/config.toml").write_text(
        "".join(f"{k} = {json.dumps(v)}\n" for k, v in case.items()))
    name = naming.container_name("coi", ws, 1)
    env = {**os.environ, "HOME": str(home)}
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "coi_sentinel.cli.main", "run", "--", "sh", "-c",
                          "echo started; echo ending"], cwd=ws, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    marks: dict[str, float] = {}
    t_gone = [0.0]

    def watch() -> None:            # on its own connection: seen, then gone
        c = incus.connect()
        while not _exists(c, name) and p.poll() is None:
            time.sleep(0.01)
        while _exists(c, name):
            time.sleep(0.01)
        t_gone[0] = time.monotonic()

    w = threading.Thread(target=watch)
    w.start()
    for line in p.stdout:
        marks.setdefault(line.strip(), time.monotonic())
    code = p.wait()
    t_exit = time.monotonic()
    w.join(timeout=60)
    err = p.stderr.read()
    if code != 0 or "started" not in marks:
        raise SessionError(f"run {i} failed ({code}): {err.strip()}")
    return {"start": marks["started"] - t0, "end": t_gone[0] - marks["ending"],
            "exit": t_exit - marks["ending"]}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for key in ("start", "end", "exit"):
        values = [r[key] for r in runs]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_sessions: needs root")
    client = incus.connect()
    results = {}
    for case_name in args.cases.split(","):
        case = CASES[case_name]
        try:
            incus.raw_get(client, f"images/aliases/{case['image']}")
        except IncusError:
            print(f"{case_name:<18} skipped: image {case['image']} missing")
            continue
        if case["monitoring"]:
            sys.path.insert(0, str(REPO / "tests"))
            from support import bpf_missing  # noqa: PLC0415

            why = bpf_missing()
            if why:
                print(f"{case_name:<18} skipped: {why}")
                continue
        with tempfile.TemporaryDirectory(prefix="coi-bench-", dir="/var/tmp") as tmp:
            runs = [one_run(Path(tmp), case, i) for i in range(args.runs)]
        results[case_name] = {"runs": runs, **summarise(runs)}
        s = results[case_name]
        print(f"{case_name:<18} start {s['start']['median'] * 1000:7.0f} ms "
              f"({s['start']['min'] * 1000:.0f}-{s['start']['max'] * 1000:.0f})   "
              f"end->gone {s['end']['median'] * 1000:6.0f} ms "
              f"({s['end']['min'] * 1000:.0f}-{s['end']['max'] * 1000:.0f})   "
              f"end->exit {s['exit']['median'] * 1000:6.0f} ms   [{args.runs} runs]")
    out = REPO / "bench/out"
    out.mkdir(exist_ok=True)
    (out / "sessions.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
