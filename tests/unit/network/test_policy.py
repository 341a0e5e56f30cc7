"""Policy validation, host-side resolution and the allowlist /etc/hosts."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from coi_sentinel.errors import NetworkError
from coi_sentinel.network.policy import Policy, Resolution, Service, hosts_file, resolve
from coi_sentinel.network.ranges import C2_PORTS

pytestmark = pytest.mark.unit


def test_defaults_are_restricted_with_the_c2_ports():
    p = Policy()
    assert p.mode == "restricted" and p.block_ports == tuple(sorted(C2_PORTS))
    assert p.refresh_interval == p.dns_ttl / 3


def test_allowlist_values_are_normalised():
    p = Policy(mode="allowlist", allow_domains=("Example.COM.", "example.com", "pypi.org"),
               allow_cidrs=("203.0.113.0/24", "2001:db8::/32"), needs=("10.123.45.1:3128",))
    assert p.allow_domains == ("example.com", "pypi.org")
    assert p.allow_cidrs == (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32"))
    assert p.needs == (Service(ipaddress.ip_address("10.123.45.1"), 3128, "tcp"),)


@pytest.mark.parametrize("kwargs", [
    {"mode": "bridge"},
    {"mode": "restricted", "allow_domains": ("example.com",)},
    {"mode": "open", "allow_cidrs": ("10.0.0.0/8",)},
    {"mode": "allowlist", "allow_domains": ("bad domain",)},
    {"mode": "allowlist", "allow_domains": ("evil.com\n1.2.3.4 pypi.org",)},
    {"mode": "allowlist", "allow_domains": ("-x.com",)},
    {"mode": "allowlist", "allow_domains": ("1.2.3.4",)},
    {"mode": "allowlist", "allow_cidrs": ("10.0.0.1/8",)},      # host bits set
    {"mode": "allowlist", "allow_cidrs": ("nonsense",)},
    {"block_ports": (0,)},
    {"block_ports": (70000,)},
    {"block_ports": (True,)},
    {"dns_ttl": 1},
    {"dns_ttl": 10**9},
    {"needs": ("10.0.0.1",)},
])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(NetworkError):
        Policy(**kwargs)


@pytest.mark.parametrize("text,want", [
    ("10.123.45.1:8080", ("10.123.45.1", 8080, "tcp")),
    ("10.123.45.1:53/udp", ("10.123.45.1", 53, "udp")),
    ("[fd42::1]:443/tcp", ("fd42::1", 443, "tcp")),
])
def test_service_parse(text, want):
    s = Service.parse(text)
    assert (str(s.address), s.port, s.proto) == want
    assert Service.parse(str(s)) == s


@pytest.mark.parametrize("text", ["fd42::1:443", "[10.0.0.1]:80", "10.0.0.1:0", "10.0.0.1:80/icmp",
                                  "host:80", "10.0.0.256:80", ""])
def test_bad_services_are_refused(text):
    with pytest.raises(NetworkError):
        Service.parse(text)


def _resolver(table):
    def resolver(domain):
        if domain not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[domain]
    return resolver


def test_resolve_collects_addresses_and_failures():
    res = resolve(["a.test", "b.test", "gone.test", "empty.test"], _resolver({
        "a.test": ["198.51.100.1", "198.51.100.1", "2001:db8::1"],
        "b.test": ["fe80::1%eth0"],
        "empty.test": [],
    }))
    assert res.addresses == {"a.test": (ipaddress.ip_address("198.51.100.1"), ipaddress.ip_address("2001:db8::1")),
                             "b.test": (ipaddress.ip_address("fe80::1"),)}
    assert res.failed == ("gone.test", "empty.test")
    assert [str(a) for a in res.v4()] == ["198.51.100.1"]
    assert [str(a) for a in res.v6()] == ["2001:db8::1", "fe80::1"]


def test_a_resolver_giving_garbage_is_an_error():
    with pytest.raises(NetworkError):
        resolve(["a.test"], _resolver({"a.test": ["not-an-ip"]}))


def test_hosts_file_lists_each_address_of_each_domain():
    res = Resolution({"pypi.org": (ipaddress.ip_address("151.101.0.223"), ipaddress.ip_address("2a04:4e42::223")),
                      "a.test": (ipaddress.ip_address("198.51.100.1"),)})
    text = hosts_file(res, hostname="coi-4179a5d5-1")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                     "127.0.1.1\tcoi-4179a5d5-1", "198.51.100.1\ta.test",
                     "151.101.0.223\tpypi.org", "2a04:4e42::223\tpypi.org"]
    assert text.endswith("\n")


def test_hosts_file_refuses_names_that_could_add_lines():
    with pytest.raises(NetworkError):
        hosts_file(Resolution({"x.test\n6.6.6.6 pypi.org": (ipaddress.ip_address("198.51.100.1"),)}))
    with pytest.raises(NetworkError):
        hosts_file(Resolution(), hostname="a b")
