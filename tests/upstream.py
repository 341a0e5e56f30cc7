"""A fake internet for sessions, on this machine only (not a test module).

:class:`Upstream` builds, in the root namespace, a bridge for the sessions' NICs (config
``network_bridge``) whose address is their router, and a network namespace, "the upstream",
reached from the host through a veth and routed to like a real uplink:

* the upstream owns TEST-NET addresses (:data:`API4` for the agents' API names, :data:`DNS4`
  for the resolver, :data:`OTHER4`), plus a private address (:data:`PRIVATE4`) and the cloud
  metadata address (:data:`METADATA4`), so that what the policy must block is really there;
* a real dnsmasq in the upstream answers :data:`API_NAMES` with :data:`API4` (any other
  name does not exist: it has no upstream server), a real dnsmasq on the host hands out addresses and the
  router on the bridge, and HTTP stand-ins (python -m http.server, or a test's own server via
  :meth:`Upstream.run_in`) answer on the API address;
* the routes to the upstream live in a routing table of the lab's own, used only for packets
  that come in on the lab's interfaces or leave from its router address (policy routing), so
  labs of tests running in parallel do not meet and the host's own traffic never takes them;
* IPv4 forwarding is switched on for the bridge and the veth only (per interface: the
  machine's real interfaces never forward), and a guard table of the lab counts and drops
  whatever the bridge or the upstream would send towards any other interface:
  :meth:`Upstream.leaked` must be 0 at the end of every test.

Nothing leaves the machine: the only routes added point at the veth, and a packet for any
other destination meets the guard's drop.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netlab import ip

API4 = "203.0.113.10"
DNS4 = "203.0.113.53"
OTHER4 = "203.0.113.20"
PRIVATE4 = "10.77.0.5"
METADATA4 = "169.254.169.254"
TARGETS = (API4, DNS4, OTHER4, PRIVATE4, METADATA4)
#: the names the agents call, all answered with API4
API_NAMES = ("api.anthropic.com", "statsig.anthropic.com", "api.openai.com", "chatgpt.com",
             "openrouter.ai", "models.dev", "opencode.ai", "registry.npmjs.org", "pypi.org")


def upstream_missing() -> str | None:
    for tool in ("ip", "nft", "dnsmasq"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"the fake upstream needs {tool}"
    return None


def _sysctl(path: str, value: str | None = None) -> str:
    p = Path("/proc/sys") / path
    old = p.read_text().strip()
    if value is not None:
        p.write_text(value)
    return old


class Upstream:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"cub{self.tag}"
        self.veth = f"cuv{self.tag}"
        self.ns = f"coi-up-{self.tag}"
        octet = 100 + int(self.tag[:2], 16) % 100
        self.subnet = f"10.{octet}.{int(self.tag[2:4], 16)}"
        self.router = f"{self.subnet}.1"
        self.table = f"coi_upguard_{self.tag}"
        self.rt_table = str(20000 + int(self.tag, 16) % 40000)
        quad = 4 * (int(self.tag[4:6], 16) % 64)              # TEST-NET-1 /30: the veth's ends
        self.uplink_host, self.uplink_peer = f"192.0.2.{quad + 1}", f"192.0.2.{quad + 2}"
        self._rules: list[list[str]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="coi-upstream-"))
        self.procs: list[subprocess.Popen] = []
        self._sysctls: list[tuple[str, str]] = []
        self._links: list[str] = []
        self._ns_made = False
        self._table_made = False

    # ---------------------------------------------------------------- building
    def start(self) -> "Upstream":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        ip("addr", "add", f"{self.router}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        ip("netns", "add", self.ns)
        self._ns_made = True
        # `ip netns exec` puts these over /etc/resolv.conf and /etc/hosts: whatever runs in the
        # upstream resolves through the upstream's dnsmasq, never the host's resolver
        self.etc = Path("/etc/netns") / self.ns
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(f"nameserver {DNS4}\noptions timeout:1 attempts:1\n")
        (self.etc / "hosts").write_text("127.0.0.1 localhost\n")
        ip("-n", self.ns, "link", "set", "lo", "up")
        ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        self._links.append(self.veth)
        ip("addr", "add", f"{self.uplink_host}/30", "dev", self.veth)
        ip("link", "set", self.veth, "up")
        ip("-n", self.ns, "addr", "add", f"{self.uplink_peer}/30", "dev", "eth0")
        for addr in TARGETS:
            ip("-n", self.ns, "addr", "add", f"{addr}/32", "dev", "eth0")
        ip("-n", self.ns, "link", "set", "eth0", "up")
        ip("-n", self.ns, "route", "add", "default", "via", self.uplink_host)
        # the guard first, then the routes and forwarding: no moment without it
        self._guard()
        for dest in ("203.0.113.0/24", "10.77.0.0/24", f"{METADATA4}/32"):
            ip("route", "add", dest, "via", self.uplink_peer, "dev", self.veth,
               "table", self.rt_table)
        for selector in (["iif", self.bridge], ["iif", self.veth], ["from", f"{self.router}/32"]):
            rule = [*selector, "lookup", self.rt_table]
            ip("rule", "add", *rule)
            self._rules.append(rule)
        for dev in (self.bridge, self.veth):
            key = f"net/ipv4/conf/{dev}/forwarding"
            self._sysctls.append((key, _sysctl(key, "1")))
        self._dns()
        self._dhcp()

    def _guard(self) -> None:
        ours = f'{{ "{self.bridge}", "{self.veth}" }}'
        rules = f"""table inet {self.table} {{
    counter leak {{ }}
    set leaked4 {{ type ipv4_addr . inet_service; flags dynamic; size 256; }}
    set leaked6 {{ type ipv6_addr; flags dynamic; size 256; }}
    chain forward {{
        type filter hook forward priority filter - 20; policy accept;
        iifname {ours} oifname != {ours} meta l4proto {{ tcp, udp }} update @leaked4 {{ ip daddr . th dport }}
        iifname {ours} oifname != {ours} meta nfproto ipv6 update @leaked6 {{ ip6 daddr }}
        iifname {ours} oifname != {ours} counter name leak drop
    }}
}}
"""
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, capture_output=True)
        self._table_made = True

    def _spawn(self, argv: list[str], *, in_ns: bool) -> subprocess.Popen:
        prefix = ["ip", "netns", "exec", self.ns] if in_ns else []
        p = subprocess.Popen([*prefix, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        return p

    def _dns(self) -> None:
        """dnsmasq in the upstream: the API names -> API4 (AAAA: no data), every other name
        does not exist (NXDOMAIN), as a real resolver answers for an internet that holds only
        these names. Never REFUSED: musl's resolver (codex's) ignores a refusal and waits for
        its timeout, so a name an agent looks up on the side (github.com) would stall it."""
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", f"--listen-address={DNS4}",
                "--except-interface=lo", f"--pid-file={self.tmp / 'dns.pid'}", "--user=root"]
        argv += [f"--host-record={name},{API4}" for name in API_NAMES]
        argv += ["--address=/#/"]
        self._spawn(argv, in_ns=True)
        self._wait(self._udp_answers, "the upstream's dnsmasq")

    def _udp_answers(self) -> bool:
        return self.ns_run([sys.executable, "-c", _RESOLVE, DNS4, API_NAMES[0]]) == API4

    def _dhcp(self) -> None:
        """dnsmasq on the host, on the lab bridge only: addresses, the router, and a DNS
        forwarder on the router address whose one server is the upstream's (what Incus'
        managed bridge is on a user's machine)."""
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", f"--server={DNS4}@{self.router}", "--bind-interfaces",
                f"--listen-address={self.router}", "--except-interface=lo",
                f"--dhcp-range={self.subnet}.50,{self.subnet}.150,1h",
                f"--dhcp-option=3,{self.router}", f"--dhcp-option=6,{self.router}",
                f"--dhcp-leasefile={self.tmp / 'leases'}", f"--pid-file={self.tmp / 'dhcp.pid'}",
                "--dhcp-authoritative", "--user=root"]
        p = self._spawn(argv, in_ns=False)
        time.sleep(0.2)
        if p.poll() is not None:
            raise RuntimeError(f"dnsmasq (DHCP) exited: {p.stderr.read()}")

    def serve_http(self, root: Path, port: int = 80) -> None:
        """python's http.server in the upstream, on the API address."""
        self._spawn([sys.executable, "-m", "http.server", "--bind", API4, "--directory", str(root),
                     str(port)], in_ns=True)
        self._wait(lambda: self.ns_run([sys.executable, "-c", _CONNECT, API4, str(port)]) == "ok",
                   "the HTTP stand-in")

    def run_in(self, argv: list[str]) -> subprocess.Popen:
        """A process of the test in the upstream (an API stand-in of its own)."""
        return self._spawn(argv, in_ns=True)

    def ns_run(self, argv: list[str]) -> str | None:
        p = subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True, text=True,
                           timeout=20)
        return p.stdout.strip() if p.returncode == 0 else None

    def _wait(self, ready, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{what}: {p.args[3:5]} exited: {p.stderr.read()}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not come up in {timeout:.0f}s")

    # ---------------------------------------------------------------- checks
    def leaked(self) -> int:
        """Packets the guard dropped on their way to an interface that is not the lab's."""
        out = subprocess.run(["nft", "-j", "list", "counter", "inet", self.table, "leak"],
                             capture_output=True, text=True, check=True).stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise RuntimeError("no leak counter")

    def leaked_to(self) -> str:
        """Where the dropped packets were going (TCP/UDP over IPv4 with the port; IPv6)."""
        out = []
        for name in ("leaked4", "leaked6"):
            text = subprocess.run(["nft", "list", "set", "inet", self.table, name],
                                  capture_output=True, text=True).stdout
            out += [line.strip() for line in text.splitlines() if "elements" in line]
        return "; ".join(out) or "(other protocols)"

    # ---------------------------------------------------------------- teardown
    def close(self) -> list[str]:
        """Remove everything (processes, sysctls, routes, links, namespace, table); return
        what was still there afterwards."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            if p.stderr:
                p.stderr.close()
        for rule in self._rules:
            ip("rule", "del", *rule, check=False)
        for key, old in reversed(self._sysctls):
            if (Path("/proc/sys") / key).exists():
                _sysctl(key, old)
        for link in reversed(self._links):
            ip("link", "del", link, check=False)
        if self._ns_made:
            ip("netns", "del", self.ns, check=False)
            shutil.rmtree(Path("/etc/netns") / self.ns, ignore_errors=True)
        if self._table_made:
            subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        left = [f"link {ln}" for ln in self._links if ip("link", "show", ln, check=False).returncode == 0]
        if any(f"lookup {self.rt_table}" in line for line in
               ip("rule", "show", check=False).stdout.splitlines()):
            left.append(f"ip rule of table {self.rt_table}")
        if os.path.exists(f"/run/netns/{self.ns}"):
            left.append(f"netns {self.ns}")
        if subprocess.run(["nft", "list", "table", "inet", self.table], capture_output=True).returncode == 0:
            left.append(f"nft table {self.table}")
        return left


#: a DNS A query by hand (no resolver library in the way): prints the first address
_RESOLVE = r"""
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(q, (server, 53)); data = s.recv(512)
print(socket.inet_ntoa(data[-4:]) if struct.unpack(">H", data[6:8])[0] else "")
"""

_CONNECT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1); print("ok")
"""


def upstream_fixture():
    """The body of the ``upstream`` pytest fixture: a started lab; after the test, the leak
    counter must be 0 and nothing may be left behind."""
    from netlab import require_network
    import pytest

    require_network()
    why = upstream_missing()
    if why:
        pytest.skip(why)
    up = Upstream().start()
    leaked, where = None, ""
    try:
        yield up
        leaked = up.leaked()
        where = up.leaked_to() if leaked else ""
    finally:
        left = up.close()
    assert leaked in (None, 0), f"{leaked} packet(s) towards an interface off the lab: {where}"
    assert not left, f"left behind: {left}"


def bridge_guard_leaks(table: str = "coi_guard_sentbr0") -> dict[str, int] | None:
    """The named drop counters (leak_out, leak_in) of the guard table scripts/setup-incus.sh
    makes for the sealed bridge; None when there is no such table or counter (a NAT set-up,
    or a guard from before the counters had names)."""
    out = {}
    for name in ("leak_out", "leak_in"):
        p = subprocess.run(["nft", "-j", "list", "counter", "inet", table, name],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return None
        for item in json.loads(p.stdout)["nftables"]:
            if "counter" in item:
                out[name] = int(item["counter"]["packets"])
    return out
