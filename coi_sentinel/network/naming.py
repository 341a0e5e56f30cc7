"""Names of a session's objects in the ``inet coi_sentinel`` table.

Every object of a session is named ``<key>.<suffix>``: the key is the session name when it is
already a safe nftables name (``[a-z][a-z0-9_-]*``, at most 48 characters; session names such
as ``coi-4179a5d5-1`` are), otherwise a sanitised form plus 8 hex digits of its hash, so two
names never share a key by accident. Keys never contain a dot, so the owner of any object is
the part of its name before the first dot; that is how :func:`owner_key` finds orphans.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import NetworkError

TABLE = "coi_sentinel"
FAMILY = "inet"

_SAFE_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,59}$")
# what a session name may contain at all: it goes into rule comments as ``session=<name>``
_NAME = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")

#: counter suffixes, in the order the policy chain evaluates them
COUNTERS = ("pending", "blocked", "metadata", "fragment", "c2port", "host", "private",
            "linklocal", "cgnat", "special", "notallowed", "passed")

#: set suffix -> (nftables type, flags). Every session has every set, whatever its mode, so
#: switching modes, showing and removing never depend on which sets a mode uses.
SETS: dict[str, tuple[str | list[str], list[str]]] = {
    "deny4": ("ipv4_addr", ["timeout"]),                                 # block(addr)
    "deny6": ("ipv6_addr", ["timeout"]),
    "denyport4": (["ipv4_addr", "inet_service"], ["timeout"]),          # block(addr, port)
    "denyport6": (["ipv6_addr", "inet_service"], ["timeout"]),
    "need4": (["ipv4_addr", "inet_proto", "inet_service"], []),         # host services needed
    "need6": (["ipv6_addr", "inet_proto", "inet_service"], []),
    "host4": ("ipv4_addr", []),                                         # the host's addresses
    "host6": ("ipv6_addr", []),
    "allow4": ("ipv4_addr", ["timeout"]),                               # resolved domains
    "allow6": ("ipv6_addr", ["timeout"]),
    "allownet4": ("ipv4_addr", ["interval"]),                           # allowed CIDRs
    "allownet6": ("ipv6_addr", ["interval"]),
}


def check_session(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise NetworkError(f"invalid session name {name!r} for a network policy "
                           "(1-128 of [A-Za-z0-9_.:@+-])", session=str(name))
    return name


def check_ifname(ifname: str) -> str:
    if not isinstance(ifname, str) or not _IFNAME.match(ifname):
        raise NetworkError(f"invalid interface name {ifname!r} (1-15 of [A-Za-z0-9_.:-])")
    return ifname


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def session_key(name: str) -> str:
    """The prefix of every nftables object of session ``name``."""
    check_session(name)
    if _SAFE_KEY.match(name):
        return name
    base = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_-")[:40]
    if not base or not base[0].isalpha():
        base = "s" + base
    return f"{base}-{_digest(name)[:8]}"


def is_key(text: str) -> bool:
    return bool(_KEY.match(text))


def owner_key(object_name: str) -> str | None:
    """The session key owning an object of our table, or None for a name that is not ours."""
    key, dot, suffix = object_name.partition(".")
    if not dot or not suffix or not is_key(key):
        return None
    return key


def host_ifname(name: str) -> str:
    """A stable host-side interface name for the session's veth (``coi`` + 11 hex digits).

    Give it to Incus as the NIC's ``host_name`` so the policy can be installed on the
    interface before the container starts (see :meth:`Firewall.prepare`).
    """
    check_session(name)
    return "coi" + _digest("ifname:" + name)[:11]


@dataclass(frozen=True, slots=True)
class Names:
    """Every object name of one session."""

    session: str
    key: str

    @classmethod
    def of(cls, session: str) -> "Names":
        return cls(session, session_key(session))

    @property
    def hook(self) -> str:
        """The base chain (``hook ingress device <veth>``, policy drop)."""
        return f"{self.key}.hook"

    @property
    def policy(self) -> str:
        """The regular chain with the mode's rules; the base chain jumps here once applied."""
        return f"{self.key}.policy"

    def set(self, suffix: str) -> str:
        if suffix not in SETS:
            raise KeyError(suffix)
        return f"{self.key}.{suffix}"

    def counter(self, category: str) -> str:
        if category not in COUNTERS:
            raise KeyError(category)
        return f"{self.key}.{category}"

    @property
    def chains(self) -> tuple[str, str]:
        return (self.hook, self.policy)

    @property
    def sets(self) -> tuple[str, ...]:
        return tuple(self.set(s) for s in SETS)

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(self.counter(c) for c in COUNTERS)
