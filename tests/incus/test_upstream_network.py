"""Sessions on a network they can use, against a fake upstream on this machine (tests/upstream.py):
a resolver, routed egress, and per mode what gets through. The lab's guard counts every packet
that would have left towards another interface: 0 at the end of each test.
"""

from __future__ import annotations

import json

import pytest

from incus_support import DEBIAN, require_incus
from upstream import API4, API_NAMES, DNS4, METADATA4, OTHER4, PRIVATE4, Upstream, upstream_fixture

pytestmark = pytest.mark.incus

#: run as the agent in the session: wait for the DHCP route, then name, HTTP and TCP probes
PROBE = r"""
import json, os, socket, sys, time, urllib.request
deadline = time.time() + 25
while time.time() < deadline:
    try:
        if any(l.split()[1] == "00000000" for l in open("/proc/net/route").read().splitlines()[1:]):
            break
    except OSError:
        pass
    time.sleep(0.2)
out = {"links": sorted(os.listdir("/sys/class/net"))}
try:
    out["dns"] = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)[0][4][0]
except OSError as e:
    out["dns"] = "error"
try:
    out["http"] = urllib.request.urlopen(f"http://{sys.argv[1]}/hello.txt", timeout=3).read().decode().strip()
except Exception as e:
    out["http"] = "error"
for addr in json.loads(sys.argv[2]):
    try:
        socket.create_connection((addr, 8080), timeout=1.5).close()
        out[addr] = "ok"
    except socket.timeout:
        out[addr] = "timeout"
    except OSError as e:
        out[addr] = "error"
print(json.dumps(out))
"""


@pytest.fixture
def upstream():
    require_incus(DEBIAN)
    yield from upstream_fixture()


@pytest.fixture
def served(upstream, tmp_path):
    """The lab with an HTTP stand-in on the API address and TCP listeners on port 8080."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www/hello.txt").write_text("hello from the stand-in\n")
    upstream.serve_http(tmp_path / "www")
    upstream.run_in(["python3", "-c", _LISTEN])
    upstream._wait(lambda: upstream.ns_run(["python3", "-c", "import socket; socket.create_connection"
                                            f"(('{OTHER4}', 8080), timeout=1); print('ok')"]) == "ok",
                   "the upstream's TCP listener")
    return upstream


_LISTEN = r"""
import socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64); s.settimeout(1)
end = time.time() + 300
while time.time() < end:
    try:
        c, _ = s.accept(); c.close()
    except OSError:
        pass
"""


def session_probe(env, up: Upstream, mode: str, **config) -> dict:
    env.config(image=DEBIAN, monitoring=False, network_bridge=up.bridge, **config)
    targets = [API4, OTHER4, PRIVATE4, METADATA4, up.router]
    r = env.run("run", "--network", mode, "--", "python3", "-c", PROBE, API_NAMES[0],
                json.dumps(targets), timeout=180)
    assert r.code == 0, r.err
    return json.loads(r.out.strip().splitlines()[-1])


def test_open_reaches_anything(env, served):
    got = session_probe(env, served, "open", network_dns=[DNS4])
    assert (got["dns"], got["http"]) == (API4, "hello from the stand-in"), got
    assert [got[a] for a in (API4, OTHER4, PRIVATE4, METADATA4)] == ["ok"] * 4, got


def test_restricted_reaches_the_internet_through_the_hosts_resolver(env, served):
    """The resolver is the host's (the router address, as Incus' managed bridge on a user's
    machine): the policy lets port 53 through to it, and nothing else of the host."""
    got = session_probe(env, served, "restricted", network_dns=[served.router])
    assert (got["dns"], got["http"]) == (API4, "hello from the stand-in"), got
    assert [got[a] for a in (API4, OTHER4)] == ["ok", "ok"], got
    assert [got[a] for a in (PRIVATE4, METADATA4, served.router)] == ["timeout"] * 3, got


def test_allowlist_reaches_only_the_listed_network(env, served):
    got = session_probe(env, served, "allowlist", network_allow_cidrs=[f"{API4}/32"],
                        network_dns=[DNS4])
    assert got["dns"] == "error", got            # no DNS in allowlist: names are pinned in /etc/hosts
    assert got[API4] == "ok", got
    assert [got[a] for a in (OTHER4, PRIVATE4, METADATA4, served.router)] == ["timeout"] * 4, got


def test_none_has_no_nic(env, served):
    got = session_probe(env, served, "none", network_dns=[DNS4])
    assert got["links"] == ["lo"], got
    assert got["dns"] == got["http"] == "error", got
    assert {got[a] for a in (API4, OTHER4, PRIVATE4, METADATA4)} == {"error"}, got
