"""The blocked ranges and metadata addresses parse, and each category is what it says."""

from __future__ import annotations

import ipaddress

import pytest

from coi_sentinel.network import ranges

pytestmark = pytest.mark.unit


def test_every_range_parses_strictly_and_categories_do_not_overlap():
    seen = []
    for category in ranges.BLOCKED:
        v4, v6 = ranges.category_networks(category)
        for net in v4 + v6:
            assert not any(net.overlaps(other) for other in seen), (category, net)
            seen.append(net)


@pytest.mark.parametrize("addr,category", [
    ("10.1.2.3", "private"), ("172.31.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("169.254.77.5", "linklocal"), ("fe80::1", "linklocal"), ("100.64.0.1", "cgnat"),
    ("127.0.0.1", "special"), ("::1", "special"), ("::ffff:10.0.0.1", "special"), ("2002:a00::1", "special"),
    ("224.0.0.251", "special"), ("255.255.255.255", "special"), ("ff02::1", "special"),
    ("64:ff9b::a00:1", "private"), ("64:ff9b::a9fe:a9fe", "linklocal"),     # NAT64 forms
])
def test_addresses_fall_in_their_category(addr, category):
    a = ipaddress.ip_address(addr)
    v4, v6 = ranges.category_networks(category)
    assert any(a in n for n in (v4 if a.version == 4 else v6))


@pytest.mark.parametrize("addr", ["1.1.1.1", "151.101.0.223", "198.51.100.10", "2606:4700::1111",
                                  "2001:db8:5::10", "64:ff9b::101:101"])
def test_internet_addresses_are_in_no_category(addr):
    a = ipaddress.ip_address(addr)
    for category in ranges.BLOCKED:
        v4, v6 = ranges.category_networks(category)
        assert not any(a in n for n in (v4 if a.version == 4 else v6)), category


def test_metadata_covers_the_clouds_in_v4_v6_and_nat64():
    v4, v6 = ranges.metadata_addresses()
    for a in ("169.254.169.254", "100.100.100.200", "168.63.129.16", "169.254.170.2"):
        assert ipaddress.ip_address(a) in v4
    for a in ("fd00:ec2::254", "fd20:ce::254", "64:ff9b::a9fe:a9fe"):
        assert ipaddress.ip_address(a) in v6


def test_c2_ports_are_valid_and_unique():
    assert len(set(ranges.C2_PORTS)) == len(ranges.C2_PORTS)
    assert all(0 < p < 65536 for p in ranges.C2_PORTS)
    assert {4444, 1337, 31337, 3333, 9050} <= set(ranges.C2_PORTS)
    assert not {22, 53, 80, 443, 8080} & set(ranges.C2_PORTS)
