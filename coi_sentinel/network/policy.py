"""A session's network policy as data: the mode, what it allows, and name resolution.

:class:`Policy` is what the session layer builds from its config. Domains of an ``allowlist``
are resolved on the host (:func:`resolve`), never in the container: the container gets an
``/etc/hosts`` made by :func:`hosts_file` and no DNS server at all.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import NetworkError
from .ranges import C2_PORTS

log = logging.getLogger(__name__)

MODES = ("restricted", "allowlist", "open")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: domain -> its addresses; the default is :func:`system_resolver` (getaddrinfo on the host)
Resolver = Callable[[str], Iterable[str]]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SERVICE = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>\d{1,5})(?:/(?P<proto>tcp|udp))?$")


def check_domain(domain: str) -> str:
    """A lower-cased host name (RFC 1123 labels); anything else cannot go into /etc/hosts."""
    d = domain.strip().rstrip(".").lower() if isinstance(domain, str) else ""
    if not d or len(d) > 253 or not all(_LABEL.match(label) for label in d.split(".")):
        raise NetworkError(f"invalid domain {domain!r} in the allowlist")
    try:
        ipaddress.ip_address(d)
    except ValueError:
        return d
    raise NetworkError(f"{domain!r} is an address, not a domain: put it in allow_cidrs")


def parse_address(text: str) -> Address:
    try:
        return ipaddress.ip_address(text.strip() if isinstance(text, str) else text)
    except ValueError as err:
        raise NetworkError(f"invalid IP address {text!r}") from err


def parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip() if isinstance(text, str) else text, strict=True)
    except ValueError as err:
        raise NetworkError(f"invalid network {text!r}: {err}") from err


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise NetworkError(f"invalid port {port!r} (1-65535)")
    return port


@dataclass(frozen=True, slots=True)
class Service:
    """A destination on the host (or next to it) that the session needs in every mode, such as
    a proxy on the bridge address: ``10.123.45.1:3128/tcp``, ``[fd42::1]:53/udp``."""

    address: Address
    port: int
    proto: str = "tcp"

    def __post_init__(self) -> None:
        check_port(self.port)
        if self.proto not in ("tcp", "udp"):
            raise NetworkError(f"invalid protocol {self.proto!r} (tcp or udp)")

    @classmethod
    def parse(cls, text: str) -> "Service":
        m = _SERVICE.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise NetworkError(f"invalid service {text!r} (ADDRESS:PORT[/tcp|udp], IPv6 in [])")
        addr = parse_address(m["v6"] or m["v4"])
        if m["v6"] is not None and addr.version != 6:
            raise NetworkError(f"invalid service {text!r}: [] is for IPv6 addresses")
        return cls(addr, int(m["port"]), m["proto"] or "tcp")

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}/{self.proto}"


@dataclass(frozen=True, slots=True)
class Policy:
    """What a session may reach. See docs/network.md for what each mode blocks."""

    mode: str = "restricted"
    #: allowlist: host names resolved on the host into sets whose elements time out
    allow_domains: tuple[str, ...] = ()
    #: allowlist: networks (v4 or v6) allowed as they are
    allow_cidrs: tuple[Network, ...] = ()
    #: every mode: services the session needs even though their addresses are blocked
    needs: tuple[Service, ...] = ()
    #: restricted and allowlist: destination ports blocked for TCP and UDP
    block_ports: tuple[int, ...] = C2_PORTS
    #: seconds a resolved address stays allowed unless a refresh resolves it again
    dns_ttl: int = 3600

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise NetworkError(f"unknown network mode {self.mode!r} (one of {', '.join(MODES)})")
        object.__setattr__(self, "allow_domains", tuple(dict.fromkeys(check_domain(d) for d in self.allow_domains)))
        object.__setattr__(self, "allow_cidrs", tuple(
            c if isinstance(c, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else parse_network(c)
            for c in self.allow_cidrs))
        object.__setattr__(self, "needs", tuple(
            s if isinstance(s, Service) else Service.parse(s) for s in self.needs))
        object.__setattr__(self, "block_ports", tuple(sorted({check_port(p) for p in self.block_ports})))
        if isinstance(self.dns_ttl, bool) or not isinstance(self.dns_ttl, int) or not 10 <= self.dns_ttl <= 7 * 86400:
            raise NetworkError(f"invalid dns_ttl {self.dns_ttl!r} (10 s to 7 days)")
        if self.mode != "allowlist" and (self.allow_domains or self.allow_cidrs):
            raise NetworkError(f"allow_domains and allow_cidrs need mode 'allowlist', not {self.mode!r}")

    def to_dict(self) -> dict:
        """Plain JSON (the daemon applies a policy sent over its socket, see docs/daemon.md)."""
        return {"mode": self.mode, "allow_domains": list(self.allow_domains),
                "allow_cidrs": [str(c) for c in self.allow_cidrs],
                "needs": [str(s) for s in self.needs], "block_ports": list(self.block_ports),
                "dns_ttl": self.dns_ttl}

    @classmethod
    def from_dict(cls, d: Any) -> "Policy":
        """The inverse of :meth:`to_dict`; NetworkError on anything else."""
        if not isinstance(d, dict) or set(d) - {"mode", "allow_domains", "allow_cidrs", "needs",
                                                "block_ports", "dns_ttl"}:
            raise NetworkError("a network policy is an object with the fields of Policy.to_dict")
        lists = {k: d.get(k) or [] for k in ("allow_domains", "allow_cidrs", "needs", "block_ports")}
        if not all(isinstance(v, list) for v in lists.values()):
            raise NetworkError("allow_domains, allow_cidrs, needs and block_ports are lists")
        return cls(mode=d.get("mode", "restricted"), dns_ttl=d.get("dns_ttl", 3600),
                   **{k: tuple(v) for k, v in lists.items()})

    @property
    def refresh_interval(self) -> float:
        """How often to call :meth:`Firewall.refresh`: a third of the TTL, so two refreshes
        may fail before an address times out."""
        return self.dns_ttl / 3


@dataclass(frozen=True, slots=True)
class Resolution:
    """The addresses of each allowed domain, as resolved on the host."""

    addresses: Mapping[str, tuple[Address, ...]] = field(default_factory=dict)
    #: domains that did not resolve this time
    failed: tuple[str, ...] = ()

    def v4(self) -> list[ipaddress.IPv4Address]:
        return sorted({a for addrs in self.addresses.values() for a in addrs if a.version == 4})

    def v6(self) -> list[ipaddress.IPv6Address]:
        return sorted({a for addrs in self.addresses.values() for a in addrs if a.version == 6})

    def as_dict(self) -> dict:
        return {"addresses": {d: [str(a) for a in addrs] for d, addrs in self.addresses.items()},
                "failed": list(self.failed)}

    @classmethod
    def from_dict(cls, d: Any) -> "Resolution":
        """The inverse of :meth:`as_dict`."""
        try:
            return cls({dom: tuple(parse_address(a) for a in addrs)
                        for dom, addrs in d["addresses"].items()}, tuple(d["failed"]))
        except (KeyError, TypeError, AttributeError) as err:
            raise NetworkError(f"not a resolution: {err}") from None


def system_resolver(domain: str) -> list[str]:
    """getaddrinfo on the host (its /etc/hosts and resolver)."""
    infos = socket.getaddrinfo(domain, None, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def resolve(domains: Iterable[str], resolver: Resolver | None = None) -> Resolution:
    """Resolve every domain; the ones that fail (or give no address) are listed in ``failed``."""
    resolver = resolver or system_resolver
    found: dict[str, tuple[Address, ...]] = {}
    failed: list[str] = []
    for domain in domains:
        domain = check_domain(domain)
        try:
            raw = list(resolver(domain))
        except (OSError, UnicodeError) as err:
            log.warning("allowlist: %s does not resolve: %s", domain, err)
            failed.append(domain)
            continue
        addrs: list[Address] = []
        for text in raw:
            try:
                addr = ipaddress.ip_address(str(text).split("%", 1)[0])   # drop a scope id
            except ValueError as err:
                raise NetworkError(f"resolver gave {text!r} for {domain}: not an address") from err
            if addr not in addrs:
                addrs.append(addr)
        if addrs:
            found[domain] = tuple(addrs)
        else:
            failed.append(domain)
    return Resolution(found, tuple(failed))


def hosts_file(resolution: Resolution, hostname: str | None = None) -> str:
    """/etc/hosts for a container in ``allowlist`` mode: localhost, its own name, and one line
    per allowed address. Domain names were checked by :func:`check_domain`, so nothing here
    can add lines of its own."""
    lines = ["# Written by coi-sentinel (network mode allowlist). The container has no DNS:",
             "# only these names resolve, and only their addresses are reachable.",
             "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    if hostname:
        if not all(_LABEL.match(label) for label in hostname.lower().split(".")):
            raise NetworkError(f"invalid host name {hostname!r} for /etc/hosts")
        lines.append(f"127.0.1.1\t{hostname}")
    for domain in sorted(resolution.addresses):
        check_domain(domain)
        for addr in resolution.addresses[domain]:
            lines.append(f"{addr}\t{domain}")
    return "\n".join(lines) + "\n"
