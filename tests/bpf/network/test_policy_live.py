"""The session policies on the real nftables of this kernel, with traffic from a fake container
(a netns behind a veth, hooked exactly as an Incus container's veth) to netns test hosts.

Every verdict is checked two ways: what the container's socket saw (an answer or a timeout:
blocked packets are dropped) and the session's counters in the kernel. Each blocked destination
is first shown to be reachable in `open` mode, so a block is the policy's doing and not a broken
lab. Blocked probes give up after 0.8 s, before TCP's first SYN retransmission (1 s), so every
blocked TCP or UDP attempt is exactly one packet and the counters can be checked exactly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest

from coi_sentinel.errors import NetworkError
from coi_sentinel.network import Policy, hosts_file, links
from netlab import Lab, counters, require_network

pytestmark = pytest.mark.bpf

ALLOWED4, ALLOWED6 = "198.51.100.10", "2001:db8:5::10"
OTHER4, OTHER6 = "203.0.113.20", "2001:db8:6::20"


def build(lab):
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.add_host("other", OTHER4, OTHER6)
    lab.add_host("private", "10.77.0.5", "fd42:77::5")
    lab.add_host("linklocal", "169.254.77.5", linklocal6="fe80::77:5")
    lab.add_host("metadata", "169.254.169.254", "fd00:ec2::254")
    lab.add_host("cgnat", "100.77.0.5")
    lab.serve("allowed", "tcp:8080", "tcp:4444", "udp:4444", "udp:5353")
    lab.serve("other", "tcp:8080")
    for label in ("private", "linklocal", "cgnat"):
        lab.serve(label, "tcp:8080")
    lab.serve("metadata", "tcp:80")


TARGETS = {
    "allowed4": (ALLOWED4, 8080, "tcp"),
    "allowed6": (ALLOWED6, 8080, "tcp"),
    "other4": (OTHER4, 8080, "tcp"),
    "c2tcp4": (ALLOWED4, 4444, "tcp"),
    "c2tcp6": (ALLOWED6, 4444, "tcp"),
    "c2udp4": (ALLOWED4, 4444, "udp"),
    "private4": ("10.77.0.5", 8080, "tcp"),
    "private6": ("fd42:77::5", 8080, "tcp"),
    "linklocal4": ("169.254.77.5", 8080, "tcp"),
    "linklocal6": ("fe80::77:5%eth0", 8080, "tcp"),
    "cgnat4": ("100.77.0.5", 8080, "tcp"),
    "metadata4": ("169.254.169.254", 80, "tcp"),
    "metadata6": ("fd00:ec2::254", 80, "tcp"),
}


BLOCKED_WAIT = 0.8


def probe_all(lab, names, timeout=1.5):
    return dict(zip(names, lab.probe([TARGETS[n] for n in names], timeout)))


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def test_restricted_blocks_private_linklocal_metadata_cgnat_c2_and_passes_the_internet(fw, lab):
    build(lab)
    s = fw.session()
    fw.fw.apply(s, Policy(mode="open"), ifname=lab.veth)
    baseline = probe_all(lab, list(TARGETS))
    assert all(v.startswith("ok:hi ") for v in baseline.values()), baseline

    fw.fw.apply(s, Policy())            # restricted, on the same interface, one transaction
    before = counters(fw.fw, s)
    got = probe_all(lab, list(TARGETS), timeout=BLOCKED_WAIT)
    assert got["allowed4"] == "ok:hi allowed" and got["allowed6"] == "ok:hi allowed"
    assert got["other4"] == "ok:hi other"
    blocked = [n for n, v in got.items() if v == "timeout"]
    assert sorted(blocked) == sorted(["c2tcp4", "c2tcp6", "c2udp4", "private4", "private6", "linklocal4",
                                      "linklocal6", "cgnat4", "metadata4", "metadata6"]), got

    d = delta(counters(fw.fw, s), before)
    assert d.pop("c2port") == 3            # TCP v4, TCP v6, UDP v4
    assert d.pop("private") == 2
    assert d.pop("linklocal") == 2
    assert d.pop("cgnat") == 1
    assert d.pop("metadata") == 2
    assert d.pop("passed") > 0
    assert d == {}, f"unexpected counters: {d}"
    view = fw.fw.show(s)
    assert view["mode"] == "restricted" and view["interface"] == lab.veth and view["interface_present"]


def test_restricted_drops_fragments(fw, lab):
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.serve("allowed", "udp:5353")
    s = fw.session()
    fw.fw.apply(s, Policy(mode="open"), ifname=lab.veth)
    assert lab.probe([(ALLOWED4, 5353, "udpbig"), (ALLOWED6, 5353, "udpbig")]) == ["ok:hi allowed"] * 2
    fw.fw.apply(s, Policy())
    before = counters(fw.fw, s)
    # small datagrams pass, 3000-byte ones are sent as fragments and dropped
    assert lab.probe([(ALLOWED4, 5353, "udp"), (ALLOWED6, 5353, "udp")]) == ["ok:hi allowed"] * 2
    assert lab.probe([(ALLOWED4, 5353, "udpbig"), (ALLOWED6, 5353, "udpbig")], timeout=BLOCKED_WAIT) == ["timeout"] * 2
    d = delta(counters(fw.fw, s), before)
    assert d["fragment"] >= 4, d           # at least 2 fragments per family (MTU 1500)


def test_allowlist_passes_only_the_listed_host(fw, lab):
    build(lab)
    s = fw.session()
    policy = Policy(mode="allowlist", allow_domains=("allowed.test",))
    resolver = {"allowed.test": [ALLOWED4, ALLOWED6]}.__getitem__
    applied = fw.fw.apply(s, policy, ifname=lab.veth, resolver=resolver)
    before = counters(fw.fw, s)
    got = probe_all(lab, list(TARGETS), timeout=BLOCKED_WAIT)
    assert got["allowed4"] == "ok:hi allowed" and got["allowed6"] == "ok:hi allowed"
    blocked = [n for n, v in got.items() if v == "timeout"]
    assert sorted(blocked) == sorted(["other4", "c2tcp4", "c2tcp6", "c2udp4", "private4", "private6",
                                      "linklocal4", "linklocal6", "cgnat4", "metadata4", "metadata6"]), got
    d = delta(counters(fw.fw, s), before)
    assert d.pop("c2port") == 3
    assert d.pop("notallowed") == 6      # other, private x2, link-local x2, cgnat
    assert d.pop("metadata") == 2
    assert d.pop("passed") > 0
    assert d == {}, d

    hosts = hosts_file(applied.resolution, hostname=s)
    assert f"{ALLOWED4}\tallowed.test" in hosts.splitlines()
    assert f"{ALLOWED6}\tallowed.test" in hosts.splitlines()
    sets = fw.fw.show(s)["sets"]
    assert [e["value"] for e in sets["allow4"]] == [ALLOWED4]
    assert 0 < sets["allow4"][0]["expires"] <= policy.dns_ttl

    # a CIDR entry lets the other host in too, in one more transaction
    fw.fw.apply(s, Policy(mode="allowlist", allow_domains=("allowed.test",), allow_cidrs=("203.0.113.0/24",)),
                resolver=resolver)
    assert lab.one(OTHER4, 8080) == "ok:hi other"
    assert lab.one("10.77.0.5", 8080, timeout=BLOCKED_WAIT) == "timeout"


def test_prepare_drops_from_the_moment_the_interface_exists(fw, unplugged_lab):
    lab = unplugged_lab
    if not fw.fw.hooks_missing_devices():
        pytest.skip("this kernel cannot hook an interface before it exists (needs Linux 6.16)")
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.serve("allowed", "tcp:8080")
    s = fw.session()
    assert not links.interface_exists(lab.veth)
    fw.fw.prepare(s, lab.veth)                      # before the interface exists
    assert fw.fw.show(s)["state"] == "pending"
    lab.plug_container()                            # the "container starts"
    assert lab.probe([(ALLOWED4, 8080, "tcp"), (ALLOWED6, 8080, "tcp")], timeout=BLOCKED_WAIT) == ["timeout"] * 2
    pending = counters(fw.fw, s)["pending"]
    assert pending >= 2                             # the two SYNs, and any ND/MLD of eth0
    fw.fw.apply(s, Policy())                        # interface taken from prepare()
    assert lab.probe([(ALLOWED4, 8080, "tcp"), (ALLOWED6, 8080, "tcp")]) == ["ok:hi allowed"] * 2
    view = fw.fw.show(s)
    assert view["state"] == "applied" and view["interface"] == lab.veth
    assert view["counters"]["pending"]["packets"] == pending     # the drop rule is gone


def test_hooks_missing_devices_matches_the_kernel(fw):
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    answer = fw.fw.hooks_missing_devices()
    if release >= (6, 16):           # mainline since 6.16; older kernels may have it backported
        assert answer is True
    from coi_sentinel.network.nft import Nft

    assert not Nft(fw.fw.table + "_probe").table_exists()       # the probe leaves nothing


def test_block_at_run_time_by_address_and_port_v4_and_v6(fw, lab):
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.serve("allowed", "tcp:8080", "tcp:8081")
    s = fw.session()
    fw.fw.apply(s, Policy(), ifname=lab.veth)
    t = [(ALLOWED4, 8080, "tcp"), (ALLOWED4, 8081, "tcp"), (ALLOWED6, 8080, "tcp"), (ALLOWED6, 8081, "tcp")]
    assert all(r.startswith("ok:") for r in lab.probe(t))

    fw.fw.block(s, ALLOWED4, 8080)
    fw.fw.block(s, ALLOWED6)
    before = counters(fw.fw, s)
    got = lab.probe(t, timeout=BLOCKED_WAIT)
    assert got == ["timeout", "ok:hi allowed", "timeout", "timeout"]
    assert delta(counters(fw.fw, s), before).get("blocked") == 3

    # blocks survive a re-apply of the policy
    fw.fw.apply(s, Policy())
    assert lab.one(ALLOWED4, 8080, timeout=BLOCKED_WAIT) == "timeout"

    assert fw.fw.unblock(s, ALLOWED6) is True
    assert fw.fw.unblock(s, ALLOWED6) is False
    assert lab.one(ALLOWED6, 8081) == "ok:hi allowed"

    # a block with a timeout lifts by itself
    fw.fw.block(s, ALLOWED4, 8081, timeout=2)
    assert lab.one(ALLOWED4, 8081, timeout=BLOCKED_WAIT) == "timeout"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and lab.one(ALLOWED4, 8081, timeout=BLOCKED_WAIT) != "ok:hi allowed":
        time.sleep(0.5)
    assert lab.one(ALLOWED4, 8081) == "ok:hi allowed"
    with pytest.raises(NetworkError):
        fw.fw.block(s, "not-an-address")
    with pytest.raises(NetworkError):
        fw.fw.block("nt-none-1", ALLOWED4)


def test_host_addresses_blocked_except_needed_services(fw):
    # the host (root namespace) answers on addresses of the lab's bridge, and routes its answers
    # back over that bridge, so the container's address must be unique on this machine
    used = {str(a) for a in links.local_addresses()}
    rnd = random.Random(os.urandom(8))
    while True:
        host4, cont4 = (f"203.0.113.{rnd.randint(2, 254)}" for _ in range(2))
        if host4 != cont4 and not {host4, cont4} & used:
            break
    sub = rnd.randint(0x100, 0xFFFF)
    host6, cont6 = f"2001:db8:{sub:x}::1", f"2001:db8:{sub:x}::2"
    lab = Lab(container4=cont4, container6=cont6).start()
    try:
        lab.address_bridge(host4, host6)
        lab.serve("host", "tcp:8080", "tcp:8081", binds=(host4, host6))
        s = fw.session()
        t = [(host4, 8080, "tcp"), (host4, 8081, "tcp"), (host6, 8080, "tcp"), (host6, 8081, "tcp")]
        fw.fw.apply(s, Policy(mode="open"), ifname=lab.veth)
        assert lab.probe(t) == ["ok:hi host"] * 4
        fw.fw.apply(s, Policy(needs=(f"{host4}:8080", f"[{host6}]:8080/tcp")))
        assert host4 in [e["value"] for e in fw.fw.show(s)["sets"]["host4"]]
        before = counters(fw.fw, s)
        got = lab.probe(t, timeout=BLOCKED_WAIT)
        assert got == ["ok:hi host", "timeout", "ok:hi host", "timeout"]
        assert delta(counters(fw.fw, s), before)["host"] == 2
    finally:
        left = lab.close()
    assert not left, left


def test_remove_leaves_no_chain_set_or_counter_and_unhooks(fw, lab):
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.serve("allowed", "tcp:4444")
    s = fw.session()
    fw.fw.apply(s, Policy(), ifname=lab.veth)
    fw.fw.block(s, ALLOWED6, 4444, timeout=60)
    assert lab.one(ALLOWED4, 4444, timeout=BLOCKED_WAIT) == "timeout"
    assert fw.fw.remove(s) is True
    state = fw.fw.state()
    from coi_sentinel.network import session_key

    assert session_key(s) not in state.sessions
    listing = json.dumps(fw.fw._nft.list_table() or {})
    assert session_key(s) + "." not in listing
    assert lab.one(ALLOWED4, 4444) == "ok:hi allowed"      # nothing hooks the veth any more
    assert fw.fw.remove(s) is False
    with pytest.raises(NetworkError):
        fw.fw.show(s)


def test_cleanup_orphans_and_the_table_goes_when_empty(private_fw):
    fw = private_fw.fw
    if not fw.hooks_missing_devices():
        pytest.skip("this kernel cannot hook an interface before it exists (needs Linux 6.16)")
    a, b, c = (private_fw.session() for _ in range(3))
    for name in (a, b, c):
        fw.prepare(name, f"cx{name.split('-')[1][:8]}")
    fw.apply(b, Policy())
    fw.block(a, "192.0.2.99", 22)
    removed = fw.cleanup_orphans([b, "some-session-that-is-gone"])
    assert sorted(removed) == sorted([a, c])
    state = fw.state()
    from coi_sentinel.network import session_key

    assert set(state.sessions) == {session_key(b)}
    assert fw.cleanup_orphans([b]) == []
    assert fw.show(b)["mode"] == "restricted"
    assert fw.remove(b) is True
    assert fw.state().exists is False                          # the table went with the last one
    assert fw.cleanup_orphans([]) == []                         # and no table is fine


def test_host_veth_found_from_the_containers_side(lab):
    sleeper = lab.container_pid()
    found = links.host_veth_of_pid(sleeper.pid)
    assert found.name == lab.veth and found.kind == "veth" and found.master == lab.bridge
    assert links.host_veth_of_index(found.index).name == lab.veth
    bridge = links.host_interface(name=lab.bridge)
    with pytest.raises(NetworkError, match="not a veth"):
        links.host_veth_of_index(bridge.index)
    with pytest.raises(NetworkError):
        links.host_veth_of_pid(sleeper.pid, "nosuch0")
    with pytest.raises(NetworkError):
        links.host_veth_of_index(found.index, container_index=found.peer_index + 1000)


def test_local_addresses_are_the_hosts():
    require_network()
    addrs = links.local_addresses()
    assert ipaddress.ip_address("127.0.0.1") in addrs and ipaddress.ip_address("::1") in addrs


def test_refresh_renews_and_follows_dns(private_fw):
    from coi_sentinel.network import DomainRefresher

    fw = private_fw.fw
    if not fw.hooks_missing_devices():
        pytest.skip("this kernel cannot hook an interface before it exists (needs Linux 6.16)")
    s = private_fw.session()
    answers = {"svc.test": ["198.51.100.10"]}

    def resolver(domain):
        if domain not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[domain]

    policy = Policy(mode="allowlist", allow_domains=("svc.test",), dns_ttl=60)
    fw.apply(s, policy, ifname="cxrefresh0", resolver=resolver, host_addresses=[])
    answers["svc.test"] = ["198.51.100.10", "198.51.100.11"]
    seen = []
    r = DomainRefresher(fw, s, policy, resolver=resolver, interval=0.1, on_change=seen.append).start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        r.stop()
    assert seen, "the refresher never reported a change"
    sets = fw.show(s)["sets"]
    assert sorted(e["value"] for e in sets["allow4"]) == ["198.51.100.10", "198.51.100.11"]
    assert all(50 <= e["expires"] <= 60 for e in sets["allow4"])
    # a name that stops resolving keeps its addresses until they time out
    answers.clear()
    res = fw.refresh(s, policy, resolver=resolver)
    assert res.failed == ("svc.test",)
    assert len(fw.show(s)["sets"]["allow4"]) == 2
    assert r.errors == 0
    fw.remove(s)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_net_show_and_list(fw, lab):
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.serve("allowed", "tcp:4444")
    s = fw.session()
    fw.fw.apply(s, Policy(), ifname=lab.veth)
    fw.fw.block(s, "192.0.2.77", 443, timeout=300)
    assert lab.one(ALLOWED4, 4444, timeout=BLOCKED_WAIT) == "timeout"

    r = _cli("net", "show", s, "--json")
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["mode"] == "restricted" and view["interface"] == lab.veth
    assert view["counters"]["c2port"]["packets"] == 1
    assert view["sets"]["denyport4"][0]["value"] == "192.0.2.77 . 443"

    r = _cli("net", "show", s)
    assert r.returncode == 0, r.stderr
    assert "mode       restricted" in r.stdout
    assert any(line.split()[:2] == ["c2port", "1"] for line in r.stdout.splitlines())
    assert all(len(line) <= 80 for line in r.stdout.splitlines())

    r = _cli("net", "list", "--json")
    assert r.returncode == 0 and {"session": s, "key": s, "mode": "restricted", "interface": lab.veth} in json.loads(r.stdout)

    r = _cli("net", "show", "nt-nosuch-1")
    assert r.returncode == 1
    assert r.stderr.startswith("coi-sentinel: error: no network policy for session") and r.stderr.count("\n") == 1
