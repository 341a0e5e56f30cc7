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

Agent images (``--images claude,codex,opencode,aider``; off by default, a build takes minutes):
per tool, the time of a full image build (debootstrap + the pinned packages, downloads from the
caches under /var/cache/coi-sentinel when warm) against the plain debian image built in the same
run (the baseline), the tarball size and the unpacked size. The tarballs go to a temporary
cache: the images in Incus are not touched.

The daemon (``--daemon``): bench_daemon.py's figures, printed here too (issue 10's goals).

Claude's first prompt (``--claude-prompt``): ``run --tool claude -d`` on a fresh workspace, as a
user who has used Claude Code before (their ~/.claude.json: onboarding done, the workspace
trusted, their API key approved; ANTHROPIC_API_KEY set), then the pane of the agent's tmux is
read every 50 ms until Claude Code shows its input prompt; the time from spawning ``run`` is
printed against a shell session's first prompt in the same run (the baseline) and against the
budget (``--claude-budget``, 30 s: start-up must not keep a user waiting longer). A run that
shows no prompt within three budgets prints the screen it stopped at (a question, a login).
Needs the coi/claude image.

Monitored runs use a daemon of the bench's own (its socket under /run/coi-sentinel), stopped at
the end.
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
from coi_sentinel.host import incus, naming  # noqa: E402

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


# ---------------------------------------------------------------- agent images
def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _unpacked_size(tarball: Path) -> int:
    total = 0
    with subprocess.Popen(["tar", "-tvzf", str(tarball)], stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            fields = line.split()
            if len(fields) > 2 and fields[2].isdigit():
                total += int(fields[2])
    return total


def bench_images(tools: list[str]) -> dict:
    """Build time and size of each agent image against the plain debian image (baseline)."""
    from coi_sentinel.sessions import images

    results = {}
    with tempfile.TemporaryDirectory(prefix="coi-bench-img-", dir="/var/tmp") as tmp:
        images.CACHE_DIR = Path(tmp)            # leave the real cache and Incus alone
        for name in ["debian", *tools]:
            v = images.VARIANTS["debian"] if name == "debian" else images.tool_variant(name)
            warm = {"npm": images.NPM_CACHE.is_dir() and any(images.NPM_CACHE.iterdir()),
                    "pip": images.PIP_CACHE.is_dir() and any(images.PIP_CACHE.iterdir())}
            t0 = time.monotonic()
            tarball = images.build_tarball(v)
            seconds = time.monotonic() - t0
            results[name] = {"build_s": seconds, "tarball_bytes": tarball.stat().st_size,
                             "unpacked_bytes": _unpacked_size(tarball), "warm_caches": warm,
                             "tools": v.agents.tool_versions() if v.agents else ""}
            tarball.unlink()
    base = results["debian"]
    print(f"{'image':<10} {'build':>8} {'x base':>7} {'tar.gz':>9} {'unpacked':>9}  tools")
    for name, r in results.items():
        print(f"{name:<10} {r['build_s']:7.1f}s {r['build_s'] / base['build_s']:6.2f}x "
              f"{r['tarball_bytes'] / 1e6:7.1f}MB {r['unpacked_bytes'] / 1e6:7.1f}MB  "
              f"{r['tools'] or '-'}")
    return results


# ---------------------------------------------------------------- claude's first prompt
#: Claude Code's input prompt: the hint under its input box
CLAUDE_PROMPT = ("? for shortcuts",)
#: a fake key (the session has no route to Anthropic): Claude Code checks it only when asked
CLAUDE_KEY = "sk-ant-bench-0000000000000000000000"


def claude_user_home(home: Path) -> dict[str, str]:
    """A returning user's ~/.claude.json (the profile merges it into the agent's): onboarding
    done, /workspace trusted, the API key approved. Returns the environment to run with."""
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "theme": "dark",
        "customApiKeyResponses": {"approved": [CLAUDE_KEY[-20:]], "rejected": []},
        "projects": {"/workspace": {"hasTrustDialogAccepted": True,
                                    "hasCompletedProjectOnboarding": True}}}))
    return {"ANTHROPIC_API_KEY": CLAUDE_KEY, "DISABLE_AUTOUPDATER": "1"}


def _pane(name: str) -> str:
    r = subprocess.run(["incus", "exec", name, "--user", "1000", "--env", "HOME=/home/code", "--",
                        "tmux", "capture-pane", "-p", "-t", "coi"], capture_output=True, text=True,
                       timeout=10)
    return r.stdout if r.returncode == 0 else ""


def first_screen(root: Path, tool: str, image: str, ready, i: int, timeout: float = 120,
                 user_home=None) -> float:
    """Seconds from spawning ``run --tool TOOL -d`` until ``ready(pane text)``; a
    :class:`SessionError` carrying the last screen when it does not come within ``timeout``.
    ``user_home(home)`` prepares the user's home and returns extra environment."""
    ws = root / f"{tool}-ws{i}"
    ws.mkdir()
    os.chown(ws, 1000, 1000)
    home = root / f"{tool}-home{i}"
    (home / ".config/coi-sentinel").mkdir(parents=True)
    (home / ".config/coi-sentinel/config.toml").write_text(
        f'image = "{image}"\nmonitoring = true\n')
    name = naming.container_name("coi", ws, 1)
    env = {**os.environ, "HOME": str(home), "TERM": "xterm-256color",
           **(user_home(home) if user_home else {})}
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", "run", "--tool", tool, "-d"],
                   cwd=ws, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    text = ""
    try:
        while time.monotonic() - t0 < timeout:
            text = _pane(name)
            if ready(text):
                return time.monotonic() - t0
            time.sleep(0.05)
        screen = " | ".join(line.strip() for line in text.splitlines() if line.strip())[:300]
        raise SessionError(f"{tool}: no prompt in {timeout:.0f}s; the screen: {screen or '(empty)'}")
    finally:
        subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", "kill", name], env=env,
                       capture_output=True)


def bench_claude_prompt(runs: int, budget: float) -> dict:
    """run -> Claude Code's input prompt, against run -> a shell's first prompt and the budget."""
    client = incus.connect()
    try:
        incus.raw_get(client, "images/aliases/coi/claude")
    except IncusError:
        print("claude-prompt      skipped: image coi/claude missing "
              "(sudo coi-sentinel image build --tool claude)")
        return {}
    out: dict[str, list[float]] = {"shell": [], "claude": []}
    with tempfile.TemporaryDirectory(prefix="coi-bench-", dir="/var/tmp") as tmp:
        for i in range(runs):
            out["shell"].append(first_screen(Path(tmp), "shell", "coi/debian12",
                                             lambda text: "$" in text, i))
            try:
                out["claude"].append(first_screen(
                    Path(tmp), "claude", "coi/claude",
                    lambda text: any(s in text for s in CLAUDE_PROMPT), i,
                    timeout=3 * budget, user_home=claude_user_home))
            except SessionError as err:
                print(f"claude-prompt      run {i}: {err}")
                return {"runs": out, "error": str(err), "budget_s": budget}
    shell, claude = statistics.median(out["shell"]), statistics.median(out["claude"])
    verdict = "within" if max(out["claude"]) <= budget else "OVER"
    print(f"claude-prompt      run -> prompt {claude * 1000:7.0f} ms "
          f"({min(out['claude']) * 1000:.0f}-{max(out['claude']) * 1000:.0f}); shell prompt "
          f"{shell * 1000:.0f} ms; {claude / shell:.2f}x; {verdict} the {budget:.0f} s budget"
          f"   [{runs} runs]")
    return {"runs": out, "claude_median_s": claude, "shell_median_s": shell, "budget_s": budget,
            "within_budget": verdict == "within"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES), help="session cases ('' = none)")
    ap.add_argument("--images", default="", metavar="TOOLS",
                    help="agent images to build and measure (claude,codex,opencode,aider)")
    ap.add_argument("--claude-prompt", action="store_true",
                    help="measure run -> Claude Code's input prompt")
    ap.add_argument("--claude-budget", type=float, default=30.0, metavar="SECONDS",
                    help="what run -> Claude's prompt may take (default 30)")
    ap.add_argument("--daemon", action="store_true",
                    help="with the daemon up: run -> first instruction, the host loops with 1, 2 "
                         "and 4 sessions registered and outside every scope, daemon RSS and idle "
                         "CPU (bench_daemon.py, same --runs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_sessions: needs root")
    if args.daemon:
        subprocess.run([sys.executable, str(REPO / "bench" / "bench_daemon.py"), "--runs",
                        str(max(args.runs, 5))], check=False)
    sock = Path(f"/run/coi-sentinel/bench-sessions-{os.getpid()}.sock")
    os.environ["COI_SENTINEL_SOCKET"] = str(sock)      # the monitored runs' own daemon
    try:
        run_benches(args)
    finally:
        sys.path.insert(0, str(REPO / "tests"))
        from incus_support import stop_daemon  # noqa: PLC0415

        stop_daemon(sock)


def run_benches(args: argparse.Namespace) -> None:
    client = incus.connect()
    results = {}
    if args.images:
        results["images"] = bench_images([t for t in args.images.split(",") if t])
    if args.claude_prompt:
        results["claude_prompt"] = bench_claude_prompt(args.runs, args.claude_budget)
    for case_name in [c for c in args.cases.split(",") if c]:
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
