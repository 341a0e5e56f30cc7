"""The network policy on a real Incus container (coi/busybox), reaching netns test hosts.

The container's NIC is a bridged NIC on a bridge the test makes (tests/netlab.py), not on
sentbr0, and its host-side name is pinned with ``host_name`` so the policy is prepared before
``incus start``: the veth Incus creates is hooked from its first packet. The container gets
static addresses and on-link routes to the test hosts only; nothing leaves the machine.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from coi_sentinel.network import Firewall, Policy, host_ifname, host_veth_of_container, hosts_file, session_key
from incus_support import BUSYBOX, PROFILE, require_incus
from netlab import CONTAINER4, CONTAINER6, Lab, counters, require_network

pytestmark = pytest.mark.incus

ALLOWED4, ALLOWED6 = "198.51.100.10", "2001:db8:5::10"
OTHER4 = "203.0.113.20"


def incus(*args: str, check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run(["incus", *args], capture_output=True, text=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"incus {' '.join(args)}: {p.stderr.strip()}")
    return p


class Box:
    """An ephemeral busybox container on the lab's bridge, prepared before it starts."""

    def __init__(self, lab: Lab, fw: Firewall) -> None:
        self.lab, self.fw = lab, fw
        self.name = f"coinet-{lab.tag}-1"
        self.ifname = host_ifname(self.name)

    def create_prepare_start(self) -> None:
        incus("init", BUSYBOX, self.name, "--ephemeral", "-p", PROFILE)
        incus("config", "device", "add", self.name, "eth0", "nic", "nictype=bridged",
              f"parent={self.lab.bridge}", "name=eth0", f"host_name={self.ifname}")
        self.fw.prepare(self.name, self.ifname)
        incus("start", self.name)

    def sh(self, script: str, input: str | None = None) -> str:
        return incus("exec", self.name, "--", "sh", "-c", script, input=input).stdout

    def configure(self, hosts: list[tuple[str | None, str | None]]) -> None:
        """Static addresses, and on-link routes to the test hosts only."""
        cmds = [f"ip addr add {CONTAINER4}/32 dev eth0", f"ip -6 addr add {CONTAINER6}/128 dev eth0"]
        for v4, v6 in hosts:
            if v4:
                cmds.append(f"ip route add {v4}/32 dev eth0")
            if v6:
                cmds.append(f"ip -6 route add {v6}/128 dev eth0")
        self.sh(" && ".join(cmds))
        deadline = time.monotonic() + 10          # IPv6 duplicate address detection
        while "tentative" in self.sh("ip -6 addr show dev eth0") and time.monotonic() < deadline:
            time.sleep(0.2)

    def probe(self, targets: list[tuple[str, int]]) -> list[str]:
        """busybox nc to each (host, port) at once, 1 s connect timeout: "ok:<answer>" or "timeout"."""
        jobs = " ".join(f"(nc -w 1 {h} {p} </dev/null >/tmp/p{i} 2>&1; echo \"rc=$?\" >>/tmp/p{i}) &"
                        for i, (h, p) in enumerate(targets))
        out = self.sh(f"{jobs} wait; for i in {' '.join(str(i) for i in range(len(targets)))}; "
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

    def delete(self) -> None:
        incus("delete", "--force", self.name, check=False)


@pytest.fixture
def box():
    require_network()
    require_incus(BUSYBOX)
    lab = Lab().start(container_link=False)
    fw = Firewall()
    b = Box(lab, fw)
    yield b
    b.delete()
    left = [name for name in incus("list", "--format", "csv", "--columns", "n").stdout.split() if name == b.name]
    fw.remove(b.name)
    leftover_policy = session_key(b.name) in fw.state().sessions
    lab_left = lab.close()
    assert not left and not leftover_policy and not lab_left, (left, leftover_policy, lab_left)


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def test_restricted_in_a_real_container_from_first_packet_to_stop(box):
    lab = box.lab
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.add_host("private", "10.77.0.5", "fd42:77::5")
    lab.add_host("linklocal", "169.254.77.5")
    lab.add_host("metadata", "169.254.169.254")
    lab.serve("allowed", "tcp:8080", "tcp:4444")
    for label in ("private", "linklocal"):
        lab.serve(label, "tcp:8080")
    lab.serve("metadata", "tcp:80")

    box.create_prepare_start()
    # the veth Incus made is the one the policy was prepared on
    found = host_veth_of_container(box.name)
    assert found.name == box.ifname == incus("config", "get", box.name, "volatile.eth0.host_name").stdout.strip()
    assert found.master == lab.bridge
    box.configure([(h.v4, h.v6) for h in lab.hosts.values()])
    # before apply(): everything the container sends is dropped (its DHCP and ND included)
    assert box.probe([(ALLOWED4, 8080)]) == ["timeout"]
    assert counters(box.fw, box.name)["pending"] >= 2

    box.fw.apply(box.name, Policy())
    before = counters(box.fw, box.name)
    targets = [(ALLOWED4, 8080), (ALLOWED6, 8080), (ALLOWED4, 4444), ("10.77.0.5", 8080),
               ("fd42:77::5", 8080), ("169.254.77.5", 8080), ("169.254.169.254", 80)]
    got = box.probe(targets)
    assert got == ["ok:hi allowed", "ok:hi allowed"] + ["timeout"] * 5, got
    d = delta(counters(box.fw, box.name), before)
    # one SYN per blocked attempt, two if nc's 1 s ran into the first retransmission
    assert 1 <= d.pop("c2port") <= 2
    assert 2 <= d.pop("private") <= 4
    assert 1 <= d.pop("linklocal") <= 2
    assert 1 <= d.pop("metadata") <= 2
    assert d.pop("passed") > 0
    assert d == {}, d                                           # nothing else fired

    view = box.fw.show(box.name)
    assert view["mode"] == "restricted" and view["interface_present"]
    box.delete()                                                # ephemeral: stop deletes it
    assert box.fw.show(box.name)["interface_present"] is False
    assert box.fw.remove(box.name) is True
    assert session_key(box.name) not in box.fw.state().sessions


def test_allowlist_in_a_real_container_with_its_hosts_file(box):
    lab = box.lab
    lab.add_host("allowed", ALLOWED4, ALLOWED6)
    lab.add_host("other", OTHER4)
    lab.serve("allowed", "tcp:8080")
    lab.serve("other", "tcp:8080")
    box.create_prepare_start()
    box.configure([(ALLOWED4, ALLOWED6), (OTHER4, None)])

    policy = Policy(mode="allowlist", allow_domains=("allowed.test",))
    applied = box.fw.apply(box.name, policy, resolver={"allowed.test": [ALLOWED4, ALLOWED6]}.__getitem__)
    box.sh("cat > /etc/hosts", input=hosts_file(applied.resolution, hostname=box.name))
    before = counters(box.fw, box.name)
    got = box.probe([("allowed.test", 8080), (ALLOWED6, 8080), (OTHER4, 8080)])
    assert got == ["ok:hi allowed", "ok:hi allowed", "timeout"], got
    d = delta(counters(box.fw, box.name), before)
    assert 1 <= d.pop("notallowed") <= 2
    assert d.pop("passed") > 0
    assert d == {}, d
