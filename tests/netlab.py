"""A small private network for the network-policy tests, all on this machine.

::

    netns coi-tc-<tag> (the "container")        root namespace             netns coi-th-<tag>-<n>
      eth0 198.51.100.2 ----veth---- cv<tag> --+-- bridge cb<tag> --+-- ch<tag><n> ----veth---- eth0 <test host>
                                     (hooked)                        +-- ...more test hosts

Everything is layer 2 on a bridge this lab creates (no address on it, no uplink), with on-link
/32 and /128 routes, so nothing is forwarded or routed anywhere: no sysctl is touched, and the
only ways out of the fake container are the test hosts. The host end of the container's veth
is in the root namespace, exactly where Incus puts a container's veth, and is what the policy
hooks. Names carry a random tag so tests run in parallel; :meth:`Lab.close` removes every
namespace, interface and process the lab made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PEER = str(Path(__file__).with_name("netlab_peer.py"))

CONTAINER4 = "198.51.100.2"
CONTAINER6 = "2001:db8:5::2"


def network_missing() -> str | None:
    """Why the network tests cannot run here (naming what is missing), or None."""
    if os.geteuid() != 0:
        return "network policy tests need root"
    if shutil.which("ip") is None:
        return "network policy tests need the ip command (iproute2)"
    try:
        import nftables
        nftables.Nftables()
    except (ImportError, OSError) as err:
        return f"network policy tests need python3-nftables and libnftables ({err})"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "network policy tests need pyroute2 (python3-pyroute2)"
    return None


def require_network() -> None:
    why = network_missing()
    if why:
        pytest.skip(why)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


@dataclass
class PeerHost:
    label: str
    ns: str
    veth: str
    v4: str | None
    v6: str | None
    linklocal6: str | None = None


@dataclass
class Lab:
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    container4: str = CONTAINER4
    container6: str = CONTAINER6
    hosts: dict[str, PeerHost] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    _made_ns: list[str] = field(default_factory=list)
    _made_links: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"cb{self.tag}"

    @property
    def container_ns(self) -> str:
        return f"coi-tc-{self.tag}"

    @property
    def veth(self) -> str:
        """The host end of the container's veth: the interface the policy hooks."""
        return f"cv{self.tag}"

    # --- building ------------------------------------------------------------------------

    def _netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._made_ns.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def start(self, *, container_link: bool = True) -> "Lab":
        ip("link", "add", self.bridge, "type", "bridge")
        self._made_links.append(self.bridge)
        ip("link", "set", self.bridge, "up")
        self._netns(self.container_ns)
        if container_link:
            self.plug_container()
        return self

    def plug_container(self) -> None:
        """Create the container's veth (the hooked interface appears now)."""
        ns = self.container_ns
        ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._made_links.append(self.veth)
        ip("link", "set", self.veth, "master", self.bridge)
        ip("link", "set", self.veth, "up")
        ip("-n", ns, "addr", "add", f"{self.container4}/32", "dev", "eth0")
        ip("-n", ns, "addr", "add", f"{self.container6}/128", "dev", "eth0", "nodad")
        ip("-n", ns, "addr", "add", "fe80::2/64", "dev", "eth0", "nodad")
        ip("-n", ns, "link", "set", "eth0", "up")
        for h in self.hosts.values():
            self._routes_to(h)

    def _routes_to(self, h: PeerHost) -> None:
        ns = self.container_ns
        if h.v4:
            ip("-n", ns, "route", "replace", f"{h.v4}/32", "dev", "eth0")
        if h.v6:
            ip("-n", ns, "-6", "route", "replace", f"{h.v6}/128", "dev", "eth0")

    def add_host(self, label: str, v4: str | None = None, v6: str | None = None,
                 linklocal6: str | None = None) -> PeerHost:
        n = len(self.hosts)
        ns = f"coi-th-{self.tag}-{n}"
        veth = f"ch{self.tag}{n}"
        self._netns(ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._made_links.append(veth)
        ip("link", "set", veth, "master", self.bridge)
        ip("link", "set", veth, "up")
        if v4:
            ip("-n", ns, "addr", "add", f"{v4}/32", "dev", "eth0")
        if v6:
            ip("-n", ns, "addr", "add", f"{v6}/128", "dev", "eth0", "nodad")
        if linklocal6:
            ip("-n", ns, "addr", "add", f"{linklocal6}/64", "dev", "eth0", "nodad")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "route", "replace", f"{self.container4}/32", "dev", "eth0")
        ip("-n", ns, "-6", "route", "replace", f"{self.container6}/128", "dev", "eth0")
        h = PeerHost(label, ns, veth, v4, v6, linklocal6)
        self.hosts[label] = h
        if self.container_ns in self._made_ns and self._link_in_ns(self.container_ns, "eth0"):
            self._routes_to(h)
        return h

    @staticmethod
    def _link_in_ns(ns: str, name: str) -> bool:
        return ip("-n", ns, "link", "show", name, check=False).returncode == 0

    def address_bridge(self, v4: str, v6: str) -> None:
        """Give the lab's bridge (in the root namespace, so "the host") an address of each
        family, with routes back to the container over the bridge only."""
        ip("addr", "add", f"{v4}/32", "dev", self.bridge)
        ip("-6", "addr", "add", f"{v6}/128", "dev", self.bridge, "nodad")
        ip("route", "add", f"{self.container4}/32", "dev", self.bridge)
        ip("-6", "route", "add", f"{self.container6}/128", "dev", self.bridge)
        ns = self.container_ns
        ip("-n", ns, "route", "replace", f"{v4}/32", "dev", "eth0")
        ip("-n", ns, "-6", "route", "replace", f"{v6}/128", "dev", "eth0")

    def serve(self, label: str, *specs: str, lifetime: float = 120, binds: tuple[str, ...] = ()) -> None:
        """Listeners on test host ``label`` (``tcp:8080``, ``udp:4444``); waits until bound.
        Label ``host`` means the root namespace, and then ``binds`` is required."""
        prefix = [] if label == "host" else ["ip", "netns", "exec", self.hosts[label].ns]
        if label == "host" and not binds:
            raise ValueError("a listener in the root namespace must bind to lab addresses")
        p = subprocess.Popen([*prefix, sys.executable, PEER, "serve", f"--lifetime={lifetime}",
                              *(f"--bind={b}" for b in binds), label, *specs],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"listener on {label} did not start: {line!r} {p.stderr.read() if p.poll() is not None else ''}")

    # --- traffic -------------------------------------------------------------------------

    def probe(self, targets: list[tuple[str, int, str]], timeout: float = 1.5, ns: str | None = None) -> list[str]:
        """From the fake container: try each (address, port, proto); see netlab_peer.probe."""
        p = subprocess.run(["ip", "netns", "exec", ns or self.container_ns, sys.executable, PEER,
                            "probe", str(timeout), json.dumps(targets)],
                           capture_output=True, text=True, timeout=30 + timeout * len(targets) * 3)
        if p.returncode != 0:
            raise RuntimeError(f"probe failed: {p.stderr}")
        return json.loads(p.stdout)

    def one(self, addr: str, port: int, proto: str = "tcp", timeout: float = 1.5) -> str:
        return self.probe([(addr, port, proto)], timeout)[0]

    def container_pid(self) -> subprocess.Popen:
        """A process living in the fake container's namespace (for the veth look-up)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.container_ns, "sleep", "60"])
        self.procs.append(p)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                    return p
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("sleep did not enter the namespace")

    # --- teardown ------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Remove everything; return what was still there that should not have been."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        for ns in reversed(self._made_ns):
            ip("netns", "del", ns, check=False)
        for link in reversed(self._made_links):
            if ip("link", "show", link, check=False).returncode == 0:
                ip("link", "del", link, check=False)
        left = [f"netns {ns}" for ns in self._made_ns
                if os.path.exists(f"/run/netns/{ns}")]
        left += [f"link {ln}" for ln in self._made_links
                 if ip("link", "show", ln, check=False).returncode == 0]
        return left


def counters(fw, session: str) -> dict[str, int]:
    """Packets per counter of a session's live policy."""
    return {k: v["packets"] for k, v in fw.show(session)["counters"].items()}


def unique_session(prefix: str = "nt") -> str:
    return f"{prefix}-{secrets.token_hex(4)}-1"
