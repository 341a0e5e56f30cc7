"""The live detection lab of tests/bpf/test_detection_live.py and the held-out evaluations
(test_detection_holdout.py, test_detection_holdout2.py): an "outside" test host in a network
namespace of this machine, and one probe load whose events are routed by leaf cgroup to a rule
engine and a trace per case; for the held-out rounds, their cases, the run of one and the
table of results."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from coi_sentinel.host.cgroups import WorkloadCgroup, cgroup_id

from support import require_bpf

TESTHOST = Path(__file__).resolve().parents[1] / "rules" / "tests" / "helpers" / "testhost.py"
PORTS = (80, 443, 1337, 8443)
AGENT_UID = 1000
AS_AGENT = f"setpriv --reuid={AGENT_UID} --regid={AGENT_UID} --clear-groups"
NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"


class Host:
    """The attacker: helpers/testhost.py in a network namespace joined by a veth pair, on a
    /30 of the benchmarking range 198.18.0.0/15 (no route leaves the pair)."""

    def __init__(self, www: Path, ports: tuple[int, ...] = PORTS) -> None:
        tag = secrets.token_hex(3)
        third = 210 + secrets.randbelow(40)
        self.ns, self.veth, self.peer = f"coi-dt-{tag}", f"cdt{tag}h", f"cdt{tag}n"
        self.local, self.addr = f"198.18.{third}.1", f"198.18.{third}.2"
        self.proc: subprocess.Popen | None = None
        ip = ["ip"]
        nsx = ["ip", "netns", "exec", self.ns]
        for argv in (ip + ["netns", "add", self.ns],
                     ip + ["link", "add", self.veth, "type", "veth", "peer", "name", self.peer],
                     ip + ["link", "set", self.peer, "netns", self.ns],
                     ip + ["addr", "add", f"{self.local}/30", "dev", self.veth],
                     ip + ["link", "set", self.veth, "up"],
                     nsx + ["ip", "addr", "add", f"{self.addr}/30", "dev", self.peer],
                     nsx + ["ip", "link", "set", self.peer, "up"],
                     nsx + ["ip", "link", "set", "lo", "up"]):
            subprocess.run(argv, check=True, capture_output=True)
        self.proc = subprocess.Popen(nsx + [sys.executable, str(TESTHOST), "--www", str(www),
                                            *map(str, ports)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def dial(self, port: int) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, str(TESTHOST),
                                 "--dial", self.local, str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class Lab:
    """One probe load for the module; a child cgroup, an engine and a trace per case."""

    def __init__(self, parent: WorkloadCgroup, host: Host, root: Path) -> None:
        from coi_sentinel.monitor import Monitor, MonitorOptions
        from coi_sentinel.rules import load_ruleset

        self.ruleset = load_ruleset(None)
        self.parent, self.host, self.root = parent, host, root
        self.mon = Monitor(MonitorOptions(
            cgroups=(str(parent.path),), kind="record",
            sensitive_prefixes=tuple(self.ruleset.sensitive_prefixes()),
            sensitive_suffixes=tuple(self.ruleset.sensitive_suffixes())))
        self.mon.start()
        self.routes: dict[int, tuple] = {}
        self.mon.pipeline.add_sink(self._route)

    def _route(self, ev, _proc) -> None:
        target = self.routes.get(ev.cgroup_id)
        if target is not None:
            engine, writer = target
            writer.write_event(ev)
            engine.feed(ev)

    def run(self, name: str, script: str, *, home: Path, cwd: Path, dial: int | None = None,
            timeout: float = 60) -> tuple[Counter, Counter, str]:
        """Run ``bash -c script`` in a cgroup of its own: (live alerts, replayed alerts, output)."""
        from coi_sentinel.replay import replay
        from coi_sentinel.rules import Engine
        from coi_sentinel.trace.format import make_header
        from coi_sentinel.trace.writer import TraceWriter

        child = self.parent.path / name
        child.mkdir()
        trace = self.root / f"{name}.jsonl.gz"
        alerts: list = []
        engine = Engine(self.ruleset, on_alert=alerts.append)
        writer = TraceWriter(str(trace), make_header("record", command=["bash", "-c", script]),
                             overwrite=True)
        self.routes[cgroup_id(child)] = (engine, writer)
        procs = child / "cgroup.procs"

        def enter() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
               "HOME": str(home), "LANG": "C.UTF-8", "HOST": self.host.addr,
               "LOCAL": self.host.local, "ATK": f"http://{self.host.addr}:80",
               "npm_config_offline": "true", "npm_config_update_notifier": "false",
               "GIT_CONFIG_NOSYSTEM": "1"}
        try:
            p = subprocess.Popen(["/bin/bash", "-c", script], cwd=cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, preexec_fn=enter)
            dialer = self.host.dial(dial) if dial else None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self.mon.poll(10)
                if p.poll() is not None and not procs.read_text().split():
                    break
            else:
                (child / "cgroup.kill").write_text("1\n")
                pytest.fail(f"{name}: still running after {timeout} s")
            out = p.stdout.read().decode(errors="replace") if p.stdout else ""
            if dialer is not None:
                dialer.wait(timeout=20)
            end = time.monotonic() + 1.0
            while time.monotonic() < end:           # the exits' late summaries
                self.mon.poll(20)
            self.mon.stream.drain()
        finally:
            del self.routes[cgroup_id(child)]
            writer.close({"events": 0})
            for _ in range(50):
                try:
                    child.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        live = Counter(a.rule for a in alerts)
        replayed = Counter(replay([trace], self.ruleset).by_rule)
        return live, replayed, out

    def family(self, rule: str) -> str:
        return Path(self.ruleset.rule(rule).rule.source.path).stem

    def close(self) -> None:
        self.mon.close()


@contextmanager
def open_lab(root: Path, cgroup: str, ports: tuple[int, ...] = PORTS, www_files=None):
    """The test host (serving root/www: "tool", "run.sh" and ``www_files(www)``'s) and a Lab
    watching a new parent cgroup; skips where the probes or iproute2 are missing."""
    require_bpf()
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2) for the test host's network namespace")
    www = root / "www"
    www.mkdir()
    shutil.copy("/bin/true", www / "tool")
    (www / "run.sh").write_text("#!/bin/sh\necho payload ran\n")
    if www_files is not None:
        www_files(www)
    host = Host(www, ports)
    try:
        with WorkloadCgroup(cgroup) as parent:
            lab = Lab(parent, host, root)
            try:
                yield lab
            finally:
                lab.close()
    finally:
        host.close()


def needs(*programs: str) -> None:
    """Skip unless every program is on this host (scripts/setup.sh installs the corpus's)."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on this host (scripts/setup.sh corpus)")


def fake_home(top: Path, files: dict[str, str]) -> Path:
    """``files`` (relative path -> text) under ``top``, and ``top/project`` a git repository
    with one commit of what is in it: a HOME for the lab's workloads."""
    for rel, text in files.items():
        p = top / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (top / "project").mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(top), "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "init"]):
        subprocess.run(argv, cwd=top / "project", env=env, check=True)
    return top


@dataclass(frozen=True)
class Case:
    """One held-out case: a bash script run in the lab's cgroup, from the fake home's project."""
    name: str
    family: str             # the rule family that must fire; "benign": nothing may fire
    script: str
    programs: tuple = ()
    user: int = 0
    dial: int | None = None
    timeout: float = 60
    #: a known gap: why the family's rule cannot fire (the test is a strict xfail)
    gap: str = ""


def run_case(lab: Lab, home: Path, case: Case, prefix: str) -> Counter:
    """Run ``case`` (as its user; $MINER the lab's miner lookalike) and return its live alerts,
    asserting the recorded trace replays to the same. COI_HOLDOUT_TRACES=DIR keeps the trace
    there as PREFIX_NAME.jsonl.gz."""
    needs(*case.programs)
    script = f"export MINER={lab.miner}\n{case.script}"
    if case.user:
        subprocess.run(["chown", "-R", f"{case.user}:{case.user}", str(home)], check=True)
        shutil.copy(lab.miner, home / "project" / ".cache" / "miner")
        script = (f"export MINER=$PWD/.cache/miner\n"
                  f"exec {AS_AGENT} /bin/bash -c {shlex.quote(case.script)}")
    live, replayed, out = lab.run(f"{prefix}-{case.name}", script, home=home,
                                  cwd=home / "project", dial=case.dial, timeout=case.timeout)
    keep = os.environ.get("COI_HOLDOUT_TRACES")
    if keep:
        shutil.copy(lab.root / f"{prefix}-{case.name}.jsonl.gz",
                    Path(keep) / f"{prefix}_{case.name}.jsonl.gz")
    assert replayed == live, (dict(live), dict(replayed), out[-1500:])
    return live


class Board:
    """The results of a held-out module's cases, printed as a table when the module ends."""

    def __init__(self) -> None:
        self.rows: list[tuple[Case, set, Counter]] = []

    def add(self, case: Case, families: set, live: Counter) -> None:
        self.rows.append((case, families, live))

    def table(self) -> str:
        by: dict[str, list] = {}
        for case, families, live in self.rows:
            if case.family != "benign":
                by.setdefault(case.family, []).append((case, families))
        lines = [f"{'family':<14}{'cases':>6}{'right':>7}{'any':>6}{'missed':>8}"]
        tot = Counter()
        for family in sorted(by):
            rows = by[family]
            right = sum(family in f for _, f in rows)
            anyal = sum(bool(f) for _, f in rows)
            tot.update(cases=len(rows), right=right, any=anyal)
            lines.append(f"{family:<14}{len(rows):>6}{right:>7}{anyal:>6}{len(rows) - anyal:>8}")
        if tot["cases"]:
            lines.append(f"{'all':<14}{tot['cases']:>6}{tot['right']:>7}{tot['any']:>6}"
                         f"{tot['cases'] - tot['any']:>8}   right family "
                         f"{100 * tot['right'] / tot['cases']:.1f} %")
        for case, families, live in self.rows:
            if case.family != "benign" and case.family not in families:
                lines.append(f"  miss {case.family}/{case.name}: {dict(live) or '-'}")
        benign = [(c, live) for c, _, live in self.rows if c.family == "benign"]
        noisy = [(c, live) for c, live in benign if live]
        lines.append(f"benign: {len(benign)} cases, {len(noisy)} with alerts")
        for case, live in noisy:
            lines.append(f"  alert benign/{case.name}: {dict(live)}")
        return "\n".join(lines)

    def report(self, request, title: str) -> None:
        """Write the table to $COI_HOLDOUT_REPORT if set, and to the terminal."""
        text = self.table()
        out = os.environ.get("COI_HOLDOUT_REPORT")
        if out:
            Path(out).write_text(text + "\n")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\n{title}:\n" + text)
