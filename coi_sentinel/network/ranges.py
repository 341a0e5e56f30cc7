"""What `restricted` mode blocks: destination ranges by category, cloud metadata addresses, and
known C2 / miner ports. Data only; :mod:`.ruleset` turns it into nftables rules.

Each category gets its own rule and its own named counter, so `net show` says *why* packets
were stopped. The lists are tuples of strings (parsed and checked once, by the unit tests and
by :func:`networks`), kept here rather than inline in rules.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata and host-agent endpoints of cloud providers. Always dropped in
#: `restricted` and `allowlist`, even when a listed domain resolves to one of them.
METADATA = (
    "169.254.169.254",      # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack, Hetzner IMDS
    "169.254.169.253",      # AWS VPC DNS (link-local form)
    "169.254.169.123",      # AWS time sync
    "169.254.170.2",        # AWS ECS task metadata / credentials
    "169.254.170.23",       # AWS EKS pod identity agent
    "169.254.0.23",         # Tencent Cloud metadata
    "100.100.100.200",      # Alibaba Cloud metadata (inside CGNAT space)
    "168.63.129.16",        # Azure WireServer (a public address, so listed on its own)
    "fd00:ec2::254",        # AWS IMDS over IPv6
    "fd00:ec2::253",        # AWS VPC DNS over IPv6
    "fd00:ec2::123",        # AWS time sync over IPv6
    "fd00:ec2::23",         # AWS EKS pod identity agent over IPv6
    "fd20:ce::254",         # GCP metadata over IPv6
)

#: category -> ranges. Order matters only for display; the rules do not overlap in effect.
BLOCKED: dict[str, tuple[str, ...]] = {
    # RFC 1918 and IPv6 unique-local: the host's LAN, the VPC, other containers
    "private": (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
        "fc00::/7",
    ),
    # RFC 3927 / RFC 4291 link-local (metadata services live here)
    "linklocal": (
        "169.254.0.0/16",
        "fe80::/10",
    ),
    # RFC 6598 shared address space: carrier NAT, Tailscale, Alibaba metadata
    "cgnat": (
        "100.64.0.0/10",
    ),
    # never a public internet destination: "this network", loopback, IETF protocol space,
    # benchmarking, multicast, reserved/broadcast; IPv6 unspecified, loopback, v4-mapped,
    # local-use NAT64, 6to4 (can embed any v4 address), deprecated site-local, discard, multicast
    "special": (
        "0.0.0.0/8", "127.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15",
        "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b:1::/48", "2002::/16",
        "fec0::/10", "100::/64", "ff00::/8",
    ),
}

#: IPv4 categories whose ranges are also blocked inside the NAT64 well-known prefix
#: (64:ff9b::/96, RFC 6052), so a NAT64 gateway cannot be used to reach them.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")

#: Ports blocked for TCP and UDP in `restricted` and `allowlist` (any destination).
C2_PORTS = (
    1337, 31337,                    # "leet" ports, Back Orifice
    4444, 4445,                     # Metasploit default handlers
    6666, 6667, 6697,               # IRC (botnet command channels)
    9001, 9030, 9050, 9051, 9150,   # Tor relay, directory, SOCKS, control, browser
    3333, 5555, 7777, 14433, 14444, 45560, 45700,   # Stratum mining pools
    8333, 18333, 30303,             # Bitcoin and Ethereum peer-to-peer
    12345, 54321,                   # NetBus and other classic RAT defaults
)


def networks(texts: Iterable[str]) -> list[Network]:
    """Parse ranges (strict: host bits must be zero)."""
    return [ipaddress.ip_network(t, strict=True) for t in texts]


def nat64(net: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
    """The v4 range as embedded in the NAT64 well-known prefix."""
    base = int(NAT64_PREFIX.network_address) | int(net.network_address)
    return ipaddress.IPv6Network((base, 96 + net.prefixlen))


def category_networks(category: str) -> tuple[list[ipaddress.IPv4Network], list[ipaddress.IPv6Network]]:
    """(v4, v6) ranges of a category, the v6 list including the NAT64 forms of the v4 ones."""
    nets = networks(BLOCKED[category])
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    v6 += [nat64(n) for n in v4 if n.prefixlen > 0]
    return v4, v6


def metadata_addresses() -> tuple[list[ipaddress.IPv4Address], list[ipaddress.IPv6Address]]:
    addrs = [ipaddress.ip_address(a) for a in METADATA]
    v4 = [a for a in addrs if isinstance(a, ipaddress.IPv4Address)]
    v6 = [a for a in addrs if isinstance(a, ipaddress.IPv6Address)]
    # the NAT64 form of each v4 metadata address too
    v6 += [ipaddress.IPv6Address(int(NAT64_PREFIX.network_address) | int(a)) for a in v4]
    return v4, v6
