"""One daemon, several sessions: isolation, failing closed when the daemon dies, re-adoption
by the next daemon, rule reloads without a restart. Real containers, a real daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from incus_support import BUSYBOX, Env, daemon_pid, require_incus, stop_daemon
from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

TICKER = "while :; do echo x >> /workspace/ticks; sleep 0.05; done"

MARKER_RULE = """
- required_engine_version: 1

- rule: {rid}
  description: A marker command ran.
  severity: high
  events: [exec]
  condition: >
    evt.errno = 0
    and proc.cmdline = "sleep {arg}"
  output: >-
    Marker command ran (cmdline=%proc.cmdline container=%container.name)
  tags: [test]
  action: alert
  false_positives: >
    None; a test rule.
"""


SIGMA_MARKER = """title: Marker Sleep Run
id: 0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d
status: test
description: A marker sleep ran.
logsource:
  product: linux
  category: process_creation
detection:
  selection:
    CommandLine|contains|all:
      - 'sleep '
      - '12.3456'
  condition: selection
level: medium
"""


def cli(*args: str, timeout: float = 240, home: Path | None = None) -> subprocess.CompletedProcess:
    """``home``: the HOME of a daemon it starts (its guardians' logs go to home's
    .local/state/coi-sentinel/logs, and a killed session's log stays there): never root's own."""
    env = None
    if home is not None:
        home.mkdir(mode=0o700, exist_ok=True)
        env = {**os.environ, "HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.fixture
def daemon(tmp_path: Path):
    """A daemon of this test's own, on its own socket, with an extra rules directory."""
    require_incus(BUSYBOX)
    require_bpf()
    sock = Path(f"/run/coi-sentinel/test-daemon-{os.urandom(3).hex()}.sock")
    rules = tmp_path / "daemon-rules"
    rules.mkdir()
    (rules / "base.yaml").write_text(MARKER_RULE.format(rid="test_base_marker", arg="11.1111"))
    r = cli("daemon", "--detach", "--socket", str(sock), "--rules", str(rules), home=tmp_path / "daemon-home")
    assert r.returncode == 0, r.stderr
    yield sock, rules
    stop_daemon(sock)


def make_env(root: Path, sock: Path) -> Env:
    root.mkdir()
    env = Env(root)
    env.socket = sock
    env.config(image=BUSYBOX, monitoring=True, network="open")
    return env


def name_of(env: Env) -> str:
    from coi_sentinel.host import naming

    return naming.container_name("coi", env.ws, 1)


def is_frozen(name: str) -> bool:
    from coi_sentinel.host.cgroups import cgroup2_mount

    try:
        return (cgroup2_mount() / f"lxc.payload.{name}" / "cgroup.freeze").read_text().strip() == "1"
    except OSError:
        return False


def ticks(env: Env) -> int:
    try:
        return len((env.ws / "ticks").read_text().splitlines())
    except OSError:
        return 0


def wait_for(what, check, timeout, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def moving(env: Env, timeout: float = 60) -> None:
    before = ticks(env)
    wait_for("the ticker to move", lambda: ticks(env) > before + 2, timeout, step=0.05)


def still(env: Env, seconds: float = 1.0) -> None:
    before = ticks(env)
    time.sleep(seconds)
    assert ticks(env) == before, "the session still runs"


def audit_records(env: Env, name: str) -> list[dict]:
    audit = env.home / ".local/state/coi-sentinel/audit"
    files = sorted(audit.glob(f"{name}.0*.jsonl")) + [audit / f"{name}.jsonl"]
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]


def stop_all(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def clean(*envs: Env) -> None:
    from coi_sentinel.host import incus
    from coi_sentinel.sessions.session import delete_container

    left = [n for e in envs for n in e.containers()]
    if left:
        client = incus.connect()
        for n in left:
            delete_container(client, n)
    for e in envs:
        e.remove_policies()
    assert not left, f"containers left behind: {left}"


def test_two_sessions_see_only_their_own_events_and_alerts(daemon, tmp_path):
    from coi_sentinel.daemon.client import DaemonClient

    sock, _rules = daemon
    a, b = make_env(tmp_path / "a", sock), make_env(tmp_path / "b", sock)
    # the marker runs once the test has subscribed (it creates `go` in the workspace)
    marked = f"while [ ! -e /workspace/go ]; do sleep 0.1; done; sleep 11.1111; {TICKER}"
    pa = a.popen("run", "--", "sh", "-c", marked)
    pb = b.popen("run", "--", "sh", "-c", marked)
    na, nb = name_of(a), name_of(b)
    try:
        a.wait_sessions(1, procs=(pa,))
        b.wait_sessions(1, procs=(pb,))
        with DaemonClient.connect(sock) as c:
            items = c.subscribe([na], ("events", "alerts"))
            for env in (a, b):
                (env.ws / "go").touch()
            got: list[dict] = []
            deadline = time.monotonic() + 30
            for item in items:
                got.append(item)
                if item["stream"] == "alert" or time.monotonic() > deadline:
                    break
        assert got and all(i["scope"] == na for i in got)
        assert all(i["data"].get("container") == na for i in got if i["stream"] == "event")
        assert any(i["stream"] == "alert" and i["data"]["rule"] == "test_base_marker" for i in got)
        moving(a)
        moving(b)
        wait_for("b's alert", lambda: [r for r in audit_records(b, nb) if r.get("record") == "alert"], 30)
        for env, name in ((a, na), (b, nb)):
            recs = audit_records(env, name)
            events = [r for r in recs if "type" in r and r.get("record") is None]
            assert events and all(r.get("container") == name for r in events)
            [alert] = [r for r in recs if r.get("record") == "alert"]
            assert alert["rule"] == "test_base_marker" and alert["container"] == name
        st = json.loads(cli("status", "--json", "--socket", str(sock)).stdout)
        assert {s["name"] for s in st["daemon"]["scopes"]} == {na, nb}
        # `watch --container` follows the daemon's stream of that session only
        w = subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", "watch", "--container", nb,
                            "--json", "--duration", "2"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COI_SENTINEL_SOCKET": str(sock)})
        assert w.returncode == 0, w.stderr
        assert "following the daemon's stream" in w.stderr
        lines = [json.loads(x) for x in w.stdout.splitlines()]
        assert any(x["type"] == "exec" for x in lines) and all(x["container"] == nb for x in lines)
    finally:
        stop_all(pa, pb)
    assert pa.returncode == 4 and pb.returncode == 4
    clean(a, b)


def test_daemon_killed_freezes_every_session_and_the_next_daemon_readopts_them(daemon, tmp_path):
    sock, rules = daemon
    a, b = make_env(tmp_path / "a", sock), make_env(tmp_path / "b", sock)
    pa = a.popen("run", "--", "sh", "-c", TICKER)
    pb = b.popen("run", "--", "sh", "-c", TICKER)
    na, nb = name_of(a), name_of(b)
    try:
        a.wait_sessions(1, procs=(pa,))
        b.wait_sessions(1, procs=(pb,))
        moving(a)
        moving(b)
        pid = daemon_pid(sock)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        wait_for("both freezes", lambda: is_frozen(na) and is_frozen(nb), 2, step=0.001)
        took = time.monotonic() - t0
        print(f"both sessions frozen {took * 1000:.1f} ms after kill -9 of the daemon")
        assert took <= 0.1
        still(a)
        still(b, 0.2)
        r = cli("daemon", "--detach", "--socket", str(sock), "--rules", str(rules),
                home=tmp_path / "daemon-home")
        assert r.returncode == 0, (r.stderr, Path(str(sock) + ".log").read_text()[-4000:])
        assert daemon_pid(sock) != pid
        # the runs reconnect and renew their leases; the new daemon thaws the sessions
        wait_for("the thaw", lambda: not is_frozen(na) and not is_frozen(nb), 30)
        moving(a)
        moving(b)
        st = json.loads(cli("status", "--json", "--socket", str(sock)).stdout)
        assert {(s["name"], s["state"]) for s in st["daemon"]["scopes"]} == {(na, "running"), (nb, "running")}
        for env, name in ((a, na), (b, nb)):
            assert any(r.get("event") == "re-adopted" for r in audit_records(env, name))
            # the guardian writes its record once the killed daemon's process is gone (its BPF
            # programs take seconds to go): that may come after the thaw
            wait_for(f"{name}'s guardian record", lambda: any(
                r.get("record") == "action" and r.get("by") == "guardian"
                for r in audit_records(env, name)), 30, step=0.2)
            r = env.run("audit", "verify", str(env.home / f".local/state/coi-sentinel/audit/{name}.jsonl"))
            assert r.code == 0, r.out + r.err
    finally:
        stop_all(pa, pb)
    assert pa.returncode == 4 and pb.returncode == 4, (pa.stderr.read(), pb.stderr.read())
    clean(a, b)


def test_rules_reload_keeps_the_old_set_on_error_and_a_new_rule_fires(daemon, tmp_path):
    sock, rules = daemon
    env = make_env(tmp_path / "a", sock)
    p = env.popen("run", "--", "sh", "-c", TICKER)
    name = name_of(env)
    try:
        env.wait_sessions(1, procs=(p,))
        before = json.loads(cli("status", "--json", "--socket", str(sock)).stdout)["daemon"]["daemon"]["rules"]
        broken = rules / "broken.yaml"
        broken.write_text("- rule: x\n  description: d\n  severity: high\n  events: [exec]\n"
                          "  condition: proc.name = \n  output: o\n")
        r = cli("rules", "reload", "--socket", str(sock))
        assert r.returncode == 1
        assert f"{broken}:5" in r.stderr and "Traceback" not in r.stderr, r.stderr
        after = json.loads(cli("status", "--json", "--socket", str(sock)).stdout)["daemon"]["daemon"]["rules"]
        assert after["hash"] == before["hash"] and after["count"] == before["count"]
        broken.unlink()
        (rules / "new.yaml").write_text(MARKER_RULE.format(rid="test_reloaded_marker", arg="31.4159"))
        r = cli("rules", "reload", "--socket", str(sock))
        assert r.returncode == 0, r.stderr
        new_hash = r.stdout.split("sha256 ")[1].strip()
        subprocess.run(["incus", "exec", name, "--", "sleep", "31.4159"], check=True, timeout=60)
        wait_for("the new rule's alert", lambda: [x for x in audit_records(env, name)
                                                 if x.get("rule") == "test_reloaded_marker"], 10)
        recs = audit_records(env, name)
        assert any(x.get("event") == "rules-reloaded" and x.get("rules_hash") == new_hash for x in recs)
        assert not [x for x in recs if x.get("record") == "action"], recs[-5:]
        moving(env)                         # nothing was restarted: the session ran on
    finally:
        stop_all(p)
    assert p.returncode == 4
    clean(env)


def test_run_starts_a_daemon_when_none_runs_and_says_so(tmp_path):
    require_incus(BUSYBOX)
    require_bpf()
    sock = Path(f"/run/coi-sentinel/test-first-{os.urandom(3).hex()}.sock")
    env = make_env(tmp_path / "a", sock)
    try:
        r = env.run("run", "--", "echo", "hello", timeout=180)
        assert r.code == 0, r.err
        assert r.out == "hello\n"
        assert f"no coi-sentinel daemon on {sock}: starting one" in r.err
        assert daemon_pid(sock) is not None
    finally:
        stop_daemon(sock)
    clean(env)


class Webhook:
    """A real HTTP receiver on loopback: every POST body it got, in order."""

    def __init__(self) -> None:
        import http.server
        import threading

        posts: list[bytes] = []
        self.posts = posts

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                posts.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict]:
        out = []
        for body in self.posts:
            got = json.loads(body)
            out += got if isinstance(got, list) else [got]
        return out

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def test_the_daemon_sends_session_alerts_to_outputs_and_serves_metrics(tmp_path):
    """A webhook receiver on loopback gets the session's alert; /metrics counts sessions."""
    import socket as so
    import urllib.request

    require_incus(BUSYBOX)
    require_bpf()
    hook = Webhook()
    with so.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    sock = Path(f"/run/coi-sentinel/test-out-{os.urandom(3).hex()}.sock")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "m.yaml").write_text(MARKER_RULE.format(rid="test_output_marker", arg="12.3456"))
    sigma = tmp_path / "sigma"
    sigma.mkdir()
    (sigma / "marker.yml").write_text(SIGMA_MARKER)
    r = cli("daemon", "--detach", "--socket", str(sock), "--rules", str(rules), "--sigma", str(sigma),
            "--alerts-to", hook.url, "--metrics", f"127.0.0.1:{mport}", home=tmp_path / "daemon-home")
    env = None
    try:
        assert r.returncode == 0, r.stderr
        env = make_env(tmp_path / "a", sock)
        p = env.popen("run", "--", "sh", "-c", f"sleep 12.3456 & {TICKER}")
        try:
            env.wait_sessions(1, procs=(p,))
            wait_for("two webhook posts", lambda: len(hook.posts) >= 2, 20, step=0.05)
            got = {a["rule"]: a for a in hook.alerts()}
            alert = got["test_output_marker"]
            assert alert["source"] == "syscall" and alert["priority"] == "Error" and alert["output_fields"]
            # the Sigma rule the daemon converted at start fires on the same exec
            assert got["marker_sleep_run"]["priority"] == "Warning"
            text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
            assert 'coi_sentinel_sessions{state="running"} 1.0' in text
            assert "coi_sentinel_alerts_total" in text
        finally:
            stop_all(p)
    finally:
        hook.close()
        stop_daemon(sock)
    if env is not None:
        clean(env)


def test_a_sessions_own_outputs_reach_the_daemon_and_get_its_alerts(daemon, tmp_path):
    """``[[outputs]]`` in the session's config.toml and ``run --alerts-to``: the daemon (which
    has no outputs of its own here) delivers that session's alert to both receivers, and
    records their delivery in the session's audit log; another session's alert goes to
    neither."""
    sock, _rules = daemon
    from_config, from_cli = Webhook(), Webhook()
    a, b = make_env(tmp_path / "a", sock), make_env(tmp_path / "b", sock)
    cfg = a.home / ".config/coi-sentinel/config.toml"
    cfg.write_text(cfg.read_text() + f'\n[[outputs]]\nurl = "{from_config.url}"\nname = "cfg-hook"\n')
    na, nb = name_of(a), name_of(b)
    marker = "sleep 11.1111 & p=$!; sleep 0.5; kill $p"
    try:
        ra = a.run("run", "--alerts-to", f"{from_cli.url}?name=cli-hook", "--", "sh", "-c", marker,
                   timeout=180)
        rb = b.run("run", "--", "sh", "-c", marker, timeout=180)
        assert ra.code == 0, ra.err
        assert rb.code == 0, rb.err
        for hook in (from_config, from_cli):
            got = hook.alerts()
            assert [x["rule"] for x in got] == ["test_base_marker"], got
            assert got[0]["container"] == na and got[0]["priority"] == "Error"
        recs = audit_records(a, na)
        [alert] = [r for r in recs if r.get("record") == "alert"]
        assert alert["time"] == from_config.alerts()[0]["time"]     # one record, one time
        [outputs] = [r for r in recs if r.get("record") == "outputs"]
        assert {k: v["delivered"] for k, v in outputs["status"].items()} == {"cfg-hook": 1, "cli-hook": 1}
        assert not [r for r in audit_records(b, nb) if r.get("record") == "outputs"]
        assert [r["rule"] for r in audit_records(b, nb) if r.get("record") == "alert"] == ["test_base_marker"]
    finally:
        from_config.close()
        from_cli.close()
    clean(a, b)


def test_a_pause_while_the_container_starts_waits_for_the_start(daemon, tmp_path):
    """A scope registered while Incus still starts its container (as `run` registers it, the
    moment LXC makes the cgroup): a freeze then would stop LXC halfway through its set-up and
    hang Incus (the start and every listing). A rule's pause is held, said on the action
    record, and applied the moment the session says the container has started."""
    from coi_sentinel.host.cgroups import cgroup2_mount

    sock, _rules = daemon
    rule = MARKER_RULE.format(rid="test_start_marker", arg="13.5791").replace(
        "action: alert", "action: pause")
    name = f"coi-starting-{os.urandom(3).hex()}"
    audit = tmp_path / f"{name}.jsonl"
    cg = cgroup2_mount() / f"lxc.payload.{name}"     # where LXC makes a container's cgroup
    cg.mkdir()
    freeze = cg / "cgroup.freeze"
    try:
        _held_pause_then_started(sock, name, cg, audit, rule)
    finally:
        freeze.write_text("0")
        (cg / "cgroup.kill").write_text("1")
        wait_for("the cgroup to empty", lambda: "populated 0" in (cg / "cgroup.events").read_text(), 10)
        cg.rmdir()


def _held_pause_then_started(sock: Path, name: str, cg: Path, audit: Path, rule: str) -> None:
    from coi_sentinel.daemon.client import DaemonClient

    freeze = cg / "cgroup.freeze"
    with DaemonClient.connect(sock) as lease:

        def scope() -> dict:
            with DaemonClient.connect(sock) as c:
                [s] = [s for s in c.request("status")["scopes"] if s["name"] == name]
            return s

        lease.request("register", name=name, cgroup=str(cg), audit=str(audit), starting=True,
                      rules=[{"path": "start.yaml", "text": rule}])
        assert scope()["state"] == "starting"

        def enter() -> None:
            (cg / "cgroup.procs").write_text(str(os.getpid()))

        sleeper = subprocess.Popen(["sleep", "13.5791"], preexec_fn=enter)
        try:
            wait_for("the marker's alert", lambda: scope()["alerts"], 30)
            time.sleep(0.3)                             # the action follows the alert at once
            assert freeze.read_text().strip() == "0" and scope()["state"] == "starting"
            with DaemonClient.connect(sock) as c:
                assert c.request("started", name=name)["state"] == "frozen"
            assert freeze.read_text().strip() == "1"
            records = [json.loads(line) for line in audit.read_text().splitlines()]
            acts = [r for r in records if r.get("record") == "action"]
            held = [r for r in acts if "still starting" in (r.get("skipped") or "")]
            assert held and held[0]["rule"] == "test_start_marker", acts
            [paused] = [r for r in acts if r["action"] == "pause" and not r.get("skipped")]
            assert paused["ok"] is True and paused["by"] == "rules", paused
            assert paused["reason"].startswith("held while the container started: rule test_start_marker")
            lease.request("unregister", name=name)
        finally:
            freeze.write_text("0")
            sleeper.kill()
            sleeper.wait()
