"""`coi-sentinel run` applies the session's network policy: real containers, real nftables,
netns test hosts only.

A session on sentbr0 can reach nothing but the bridge IP, so the reachability tests give the
session a NIC on a bridge of their own (config ``network_bridge``, tests/netlab.py). On it, one
network namespace, the gateway, plays the outside world, like a host with a route out: it hands
out an address and a default route by DHCP (dnsmasq; router advertisements for IPv6) and owns
every target address itself, so whatever the container sends to its default route arrives
there, and nothing is forwarded or leaves the machine. The env fixture fails a test that leaves
a container or a policy of its sessions behind; the lab, one that leaves a namespace or link.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import time

import pytest

from coi_sentinel.network import Firewall, host_ifname, session_key
from coi_sentinel.host import naming
from incus_support import AGENT_UID, BUSYBOX
from netlab import Lab, ip, require_network

pytestmark = pytest.mark.incus

GW4, GW6 = "198.51.100.1", "2001:db8:5::1"
ALLOWED4, ALLOWED6 = "198.51.100.10", "2001:db8:5::10"   # "the internet"
OTHER4 = "203.0.113.20"                                  # the internet, not on an allowlist
LISTED_NET, LISTED4 = "192.0.2.0/28", "192.0.2.5"        # allowlisted as a CIDR
PRIVATE4, PRIVATE6 = "10.77.0.5", "fd42:77::5"
LINKLOCAL4 = "169.254.77.5"
METADATA4 = "169.254.169.254"
TARGETS4 = (ALLOWED4, OTHER4, LISTED4, PRIVATE4, LINKLOCAL4, METADATA4)
TARGETS6 = (ALLOWED6, PRIVATE6)
#: counters of a rule that drops
DROPS = ("blocked", "metadata", "fragment", "c2port", "host", "private", "linklocal", "cgnat",
         "special", "notallowed")


# ---------------------------------------------------------------- the lab
class Gateway:
    """The outside world of a session: one namespace on the lab's bridge with every target
    address, DHCP and IPv6 router advertisements, and listeners on TCP 80, 4444 and 8080."""

    def __init__(self, lab: Lab, tmp) -> None:
        self.lab = lab
        host = lab.add_host("gw")
        self.ns = host.ns
        ip("-n", self.ns, "addr", "add", f"{GW4}/24", "dev", "eth0")
        ip("-n", self.ns, "-6", "addr", "add", f"{GW6}/64", "dev", "eth0", "nodad")
        for addr in TARGETS4:
            ip("-n", self.ns, "addr", "add", f"{addr}/32", "dev", "eth0")
        for addr in TARGETS6:
            ip("-n", self.ns, "-6", "addr", "add", f"{addr}/128", "dev", "eth0", "nodad")
        self._wait_linklocal()
        dhcp = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--port=0", "--interface=eth0", "--bind-interfaces", "--user=root", "--group=root",
             "--pid-file=", f"--dhcp-leasefile={tmp}/leases", "--log-facility=-",
             "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,1h",
             f"--dhcp-option=3,{GW4}", "--dhcp-option=6",
             "--enable-ra", "--dhcp-range=2001:db8:5::,ra-only,64,1h"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lab.procs.append(dhcp)
        lab.serve("gw", "tcp:80", "tcp:4444", "tcp:8080", lifetime=300)
        time.sleep(0.2)
        if dhcp.poll() is not None:
            raise RuntimeError(f"dnsmasq exited: {dhcp.stderr.read()}")

    def _wait_linklocal(self) -> None:
        """dnsmasq sends router advertisements from the link-local address, once DAD is done."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = ip("-n", self.ns, "-6", "addr", "show", "dev", "eth0", "scope", "link").stdout
            if "fe80" in out and "tentative" not in out:
                return
            time.sleep(0.1)
        raise RuntimeError("the gateway's link-local address stayed tentative")


@pytest.fixture
def gateway(tmp_path):
    require_network()
    lab = Lab().start(container_link=False)
    try:
        yield Gateway(lab, tmp_path)
    finally:
        left = lab.close()
        assert not left, left


@pytest.fixture
def policies(env):
    """The table, to look at (the env fixture fails a test that leaves a policy of its
    workspace's sessions behind)."""
    require_network()
    return Firewall()


# ---------------------------------------------------------------- helpers
def incus(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run(["incus", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"incus {' '.join(args)}: {p.stderr.strip()}")
    return p


def as_agent(name: str, script: str) -> str:
    """A shell script as the agent (uid 1000) in the session's container, like the agent."""
    return incus("exec", name, "--user", str(AGENT_UID), "--group", str(AGENT_UID),
                 "--cwd", "/workspace", "--", "sh", "-c", script).stdout


def wait_for_routes(name: str, v6: bool = True, timeout: float = 30) -> None:
    """DHCP gave the container an address and a default route (and RA an IPv6 one)."""
    deadline = time.monotonic() + timeout
    script = "ip -4 route show default; echo ==; ip -6 route show default; ip -6 addr show dev eth0"
    while time.monotonic() < deadline:
        v4_out, v6_out = as_agent(name, script).split("==", 1)
        if "via" in v4_out and (not v6 or ("via" in v6_out and "2001:db8:5:" in v6_out
                                            and "tentative" not in v6_out)):
            return
        time.sleep(0.3)
    raise AssertionError(f"{name} got no routes: {as_agent(name, script)}")


def probe(name: str, targets: list[tuple[str, int]]) -> list[str]:
    """busybox nc to each (host, port) at once as the agent, 1 s timeout:
    "ok:<answer>" or "timeout"."""
    jobs = " ".join(f"(nc -w 1 {h} {p} </dev/null >/tmp/p{i} 2>&1; echo \"rc=$?\" >>/tmp/p{i}) &"
                    for i, (h, p) in enumerate(targets))
    out = as_agent(name, f"{jobs} wait; for i in {' '.join(str(i) for i in range(len(targets)))}; "
                         "do echo \"== $i\"; cat /tmp/p$i; done")
    results = []
    for block in re.split(r"^== \d+\n", out, flags=re.M)[1:]:
        text = block.strip()
        if text.endswith("rc=0"):
            results.append("ok:" + text.rsplit("rc=0", 1)[0].strip())
        elif "timed out" in text:
            results.append("timeout")
        else:
            results.append("error:" + text)
    return results


def net_show(env, name: str) -> dict:
    r = env.run("net", "show", name, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def packets(view: dict) -> dict[str, int]:
    return {k: v["packets"] for k, v in view["counters"].items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def assert_no_policy(env, fw: Firewall, name: str) -> None:
    assert session_key(name) not in fw.state().sessions
    r = env.run("net", "show", name)
    assert r.code == 1 and "no network policy" in r.err, (r.code, r.err)


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if p.poll() is None:
        p.send_signal(sig)
    try:
        return p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


# ---------------------------------------------------------------- restricted, through `run`
def test_restricted_session_reaches_the_internet_only(env, gateway, policies):
    env.config(image=BUSYBOX, monitoring=False, network_bridge=gateway.lab.bridge)
    p = env.popen("run", "--", "sleep", "300")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
        name = s["name"]
        assert s["network"] == "restricted"
        # the veth Incus made carries the pinned name, on the bridge of the config
        assert incus("config", "get", name, "volatile.eth0.host_name").stdout.strip() == host_ifname(name)
        view = net_show(env, name)
        assert (view["mode"], view["state"], view["interface"], view["interface_present"]) == \
            ("restricted", "applied", host_ifname(name), True)
        wait_for_routes(name)

        before = packets(net_show(env, name))
        got = probe(name, [(ALLOWED4, 8080), (ALLOWED6, 8080), (OTHER4, 80), (ALLOWED4, 4444),
                           (PRIVATE4, 8080), (PRIVATE6, 8080), (LINKLOCAL4, 8080), (METADATA4, 80)])
        assert got == ["ok:hi gw"] * 3 + ["timeout"] * 5, got
        d = delta(packets(net_show(env, name)), before)
        assert d.get("c2port", 0) >= 1, d            # ALLOWED4:4444
        assert d.get("private", 0) >= 2, d           # 10.77.0.5 and fd42:77::5
        assert d.get("linklocal", 0) >= 1, d
        assert d.get("metadata", 0) >= 1, d
        assert d.get("passed", 0) > 0, d
        assert not {k for k in DROPS if d.get(k)} - {"c2port", "private", "linklocal", "metadata"}, d

        # a run-time block, as the response engine makes it: that port of that address only
        r = env.run("net", "block", name, ALLOWED4, "--port", "8080")
        assert (r.code, r.out.strip()) == (0, f"{name}: {ALLOWED4} port 8080 blocked"), r.err
        before = packets(net_show(env, name))
        assert probe(name, [(ALLOWED4, 8080), (ALLOWED4, 80), (ALLOWED6, 8080)]) == \
            ["timeout", "ok:hi gw", "ok:hi gw"]
        assert delta(packets(net_show(env, name)), before).get("blocked", 0) >= 1
        assert env.run("net", "unblock", name, ALLOWED4, "--port", "8080").code == 0
        assert env.run("net", "unblock", name, ALLOWED4, "--port", "8080").code == 1
        assert probe(name, [(ALLOWED4, 8080)]) == ["ok:hi gw"]

        assert stop(p) == 4              # shut down while CMD ran: the normal end
    finally:
        stop(p, signal.SIGKILL)
    assert env.containers() == []
    assert_no_policy(env, policies, name)


# ---------------------------------------------------------------- allowlist and the order of steps
@pytest.fixture
def in_process(env, monkeypatch):
    """Start sessions in this process (to inject a resolver and watch the order of steps)."""
    from coi_sentinel.sessions import config as config_mod
    from coi_sentinel.sessions import profiles
    from coi_sentinel.supervision.monitor import Unmonitored
    from coi_sentinel.sessions.session import SessionManager, SessionSpec

    monkeypatch.setenv("HOME", str(env.home))
    for var in ("SUDO_USER", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    started = []

    def start(resolver=None):
        cfg = config_mod.load(env.ws)
        spec = SessionSpec(workspace=env.ws.resolve(), config=cfg, profile=profiles.get(cfg.tool),
                           command=("sleep", "300"), host_home=env.home, host_env={})
        session = SessionManager(monitor_factory=Unmonitored, resolver=resolver).start(spec)
        started.append(session)
        return session

    yield start
    for session in started:
        session.finish()


@pytest.fixture
def steps(monkeypatch):
    """Record prepare, start, apply and every exec, each with what the kernel and Incus say at
    that moment (container status; the session's policy state)."""
    from coi_sentinel.network import firewall as fw_mod
    from coi_sentinel.network.links import interface_exists
    from coi_sentinel.host import incus as incus_mod
    from coi_sentinel.sessions import session as session_mod
    from coi_sentinel.sessions import streams

    log: list[tuple] = []
    observer = Firewall()

    def status(name):
        return incus_mod.raw_get(incus_mod.connect(), f"instances/{name}")["status"]

    def policy_state(name):
        s = observer.state().sessions.get(session_key(name))
        return None if s is None else (s.mode or "incomplete")

    real_prepare, real_apply, real_exec = fw_mod.Firewall.prepare, fw_mod.Firewall.apply, streams.exec_stream
    real_boot = session_mod.Session.boot

    def prepare(self, name, ifname):
        log.append(("prepare", status(name), interface_exists(ifname)))
        return real_prepare(self, name, ifname)

    def apply(self, name, policy, **kw):
        log.append(("apply", status(name), policy_state(name)))
        return real_apply(self, name, policy, **kw)

    def exec_stream(client, name, command, **kw):
        log.append(("exec", status(name), policy_state(name), tuple(command)))
        return real_exec(client, name, command, **kw)

    def boot(self, step):
        log.append(("boot", status(self.name), policy_state(self.name)))
        return real_boot(self, step)

    monkeypatch.setattr(fw_mod.Firewall, "prepare", prepare)
    monkeypatch.setattr(fw_mod.Firewall, "apply", apply)
    monkeypatch.setattr(streams, "exec_stream", exec_stream)
    monkeypatch.setattr(session_mod.Session, "boot", boot)
    return log


INSTALL_CHECK_PROFILE = """\
name: nettest
description: a test agent whose install check is the agent's first exec
command: [sh]
install_check: [sh, -c, 'true']
"""


@pytest.mark.parametrize("hooks_early", [True, False], ids=["prepared-before-start", "old-kernel"])
def test_policy_is_in_place_before_the_agent_first_runs(env, policies, in_process, steps,
                                                        monkeypatch, hooks_early):
    from coi_sentinel.network import firewall as fw_mod

    if not hooks_early:      # what a kernel older than 6.16 answers: hook right after start
        monkeypatch.setattr(fw_mod.Firewall, "hooks_missing_devices", lambda self: False)
    env.profile("nettest", INSTALL_CHECK_PROFILE)
    env.config(image=BUSYBOX, monitoring=False, tool="nettest")
    session = in_process()
    name = session.name
    session.run_headless(["true"])
    kinds = [e[0] for e in steps]
    if hooks_early:
        # hooked (dropping everything) while the container is stopped and its veth absent
        assert kinds[:4] == ["boot", "prepare", "apply", "exec"], steps
        assert steps[0][2] is None
        assert steps[1][1:] == ("Stopped", False), steps
        assert steps[2][1:] == ("Running", "pending"), steps
    else:
        assert kinds[:3] == ["boot", "apply", "exec"], steps
        assert steps[1][1:] == ("Running", None), steps
    # the agent's first exec (the install check), and every later one, meets the policy
    execs = [e for e in steps if e[0] == "exec"]
    assert execs[0][3] == ("sh", "-c", "true")
    assert all(e[1:3] == ("Running", "restricted") for e in execs), execs
    session.finish()
    assert env.containers() == []
    assert_no_policy(env, policies, name)


def test_allowlist_session_reaches_only_what_is_listed(env, gateway, policies, in_process):
    names = {"allowed.test": [ALLOWED4, ALLOWED6]}

    def resolver(domain):
        if domain not in names:
            raise OSError(f"{domain}: unknown")
        return names[domain]

    env.config(image=BUSYBOX, monitoring=False, network_bridge=gateway.lab.bridge,
               network="allowlist", network_allow_domains=["allowed.test"],
               network_allow_cidrs=[LISTED_NET])
    session = in_process(resolver)
    name = session.name
    hosts = as_agent(name, "cat /etc/hosts")
    assert f"{ALLOWED4}\tallowed.test" in hosts and f"{ALLOWED6}\tallowed.test" in hosts, hosts
    assert f"127.0.1.1\t{name}" in hosts
    assert "nameserver" not in as_agent(name, "cat /etc/resolv.conf")
    wait_for_routes(name)

    before = packets(net_show(env, name))
    got = probe(name, [("allowed.test", 8080), (ALLOWED6, 8080), (LISTED4, 8080), (OTHER4, 8080),
                       (PRIVATE4, 8080), (ALLOWED4, 4444), (METADATA4, 80)])
    assert got == ["ok:hi gw"] * 3 + ["timeout"] * 4, got
    d = delta(packets(net_show(env, name)), before)
    assert d.get("notallowed", 0) >= 2, d          # OTHER4 and PRIVATE4
    assert d.get("c2port", 0) >= 1, d              # even to an allowed host
    assert d.get("metadata", 0) >= 1, d
    assert not {k for k in DROPS if d.get(k)} - {"notallowed", "c2port", "metadata"}, d

    # the refresher follows the host's DNS: new address in the set and in /etc/hosts
    names["allowed.test"] = [ALLOWED4, "198.51.100.11"]
    session.network.refresher.refresh_once()
    hosts = as_agent(name, "cat /etc/hosts")
    assert "198.51.100.11\tallowed.test" in hosts and ALLOWED6 not in hosts, hosts
    allow4 = [e["value"] for e in net_show(env, name)["sets"]["allow4"]]
    assert "198.51.100.11" in allow4

    session.finish()
    assert env.containers() == []
    assert_no_policy(env, policies, name)


# ---------------------------------------------------------------- every way a session ends
def test_kill_shutdown_keeper_and_none(env, policies):
    env.config(image=BUSYBOX, monitoring=False)
    p1 = env.popen("run", "--slot", "1", "--", "sleep", "300")
    p3 = env.popen("run", "--slot", "3", "--network", "none", "--", "sleep", "300")
    p4 = env.popen("run", "--slot", "4", "--", "sleep", "300")
    procs = (p1, p3, p4)
    try:
        r = env.run("run", "--slot", "2", "--network", "open", "--detach")   # a keeper owns it
        assert r.code == 0, r.err
        running = {s["name"].rsplit("-", 1)[1]: s for s in env.wait_sessions(4, procs=procs)}
        n1, n2, n3, n4 = (running[k]["name"] for k in ("1", "2", "3", "4"))
        assert [running[k]["network"] for k in ("1", "2", "3", "4")] == \
            ["restricted", "open", "none", "restricted"]
        assert [net_show(env, n)["mode"] for n in (n1, n2, n4)] == ["restricted", "open", "restricted"]
        assert_no_policy(env, policies, n3)            # no NIC, nothing to filter

        r = env.run("kill", n1)
        assert r.code == 0, r.err
        assert_no_policy(env, policies, n1)            # gone when `kill` returns
        assert p1.wait(timeout=60) == 1                # its run saw the container go

        as_agent(n2, "tmux kill-server")               # the agent ends: its keeper ends the session
        deadline = time.monotonic() + 60
        while (n2 in env.containers() or session_key(n2) in policies.state().sessions) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert n2 not in env.containers()
        assert_no_policy(env, policies, n2)

        r = env.run("shutdown", n4)
        assert r.code == 0, r.err
        assert_no_policy(env, policies, n4)
        assert p4.wait(timeout=60) == 4
        assert stop(p3) == 4
    finally:
        for p in procs:
            stop(p, signal.SIGKILL)
    assert env.containers() == []


def test_ctrl_c_during_start_up_removes_the_policy(env, policies):
    env.config(image=BUSYBOX, monitoring=False)
    name = naming.container_name("coi", env.ws, 1)
    p = env.popen("run", "--", "sleep", "120")
    try:
        deadline = time.monotonic() + 60
        while session_key(name) not in policies.state().sessions and time.monotonic() < deadline:
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.01)           # prepared: the container exists and is about to start
        assert session_key(name) in policies.state().sessions
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 130
    finally:
        stop(p, signal.SIGKILL)
    assert env.containers() == []
    assert_no_policy(env, policies, name)


def test_clean_orphans_after_kill_9_removes_the_policies(env, policies):
    from coi_sentinel.host import incus as incus_mod
    from coi_sentinel.sessions.session import delete_container

    env.config(image=BUSYBOX, monitoring=False)
    procs = [env.popen("run", "--slot", str(slot), "--", "sleep", "300") for slot in (1, 2)]
    # the policy of another workspace's session, whose container does not exist either:
    # `clean --orphans -w` must leave it alone
    other = f"coi-{secrets.token_hex(4)}-1"
    policies.prepare(other, host_ifname(other))
    try:
        names = sorted(s["name"] for s in env.wait_sessions(2, procs=tuple(procs)))
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        # one container is still running (an orphan); the other one is gone already
        delete_container(incus_mod.connect(), names[1])
        assert {session_key(n) for n in names} <= set(policies.state().sessions)

        r = env.run("clean", "--orphans", "-w", str(env.ws))
        assert r.code == 0, r.err
        lines = r.out.splitlines()
        assert f"removed {names[0]} (orphan: its keeper is gone)" in lines, r.out
        assert f"removed network policy of {names[0]}" in lines, r.out
        assert f"removed network policy of {names[1]} (its container is gone)" in lines, r.out
        for n in names:
            assert_no_policy(env, policies, n)
        assert session_key(other) in policies.state().sessions
    finally:
        for p in procs:
            stop(p, signal.SIGKILL)
        policies.remove(other)
    assert env.containers() == []

