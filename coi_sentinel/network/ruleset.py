"""libnftables JSON for a session's policy. Pure functions: no kernel, no I/O.

Each public ``*_batch`` function returns one ``{"nftables": [...]}`` document that the kernel
applies as one transaction (all of it or nothing). Shape of a session in the table::

    chain <key>.hook    type filter hook ingress device <veth> priority filter; policy drop
                        one rule: "counter <key>.pending drop"          (prepared, not applied)
                              or: "jump <key>.policy"                   (applied)
    chain <key>.policy  the mode's rules, ending in an explicit verdict
    set   <key>.deny4 ... <key>.allownet6                               (see naming.SETS)
    counter <key>.pending ... <key>.passed                              (see naming.COUNTERS)

The hook is the *ingress* of the host-side veth: every packet the container sends passes it,
whether it is then bridged, routed or delivered to the host, before conntrack, br_netfilter or
anything else on the host sees it. The one rule of the base chain carries a comment
``coi-sentinel session=<name> dev=<veth> mode=<mode>`` (nft 1.0.6 does not list a netdev
chain's device in JSON), which is how the live state is read back.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Sequence

from .naming import COUNTERS, FAMILY, SETS, Names
from .policy import Address, Network, Policy, Resolution
from .ranges import BLOCKED, category_networks, metadata_addresses

Cmd = dict[str, Any]
Expr = list[dict[str, Any]]

#: priority of the session's ingress base chain (only our chains hook a session's veth)
HOOK_PRIORITY = 0
META_PREFIX = "coi-sentinel"

# --- expressions --------------------------------------------------------------------------

ACCEPT = {"accept": None}
#: Blocked packets are dropped, never rejected: ``reject`` in an inet *ingress* chain sends its
#: ICMP error or TCP reset through the host's routing table to the packet's source address, so
#: a container spoofing its source could make the host send errors anywhere, off the machine
#: too. A drop answers nothing; the socket of the agent times out.
DROP = {"drop": None}
L4PROTO = {"meta": {"key": "l4proto"}}
DPORT = {"payload": {"protocol": "th", "field": "dport"}}


def daddr(version: int) -> dict:
    return {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": "daddr"}}


def match(left: Any, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def in_set(left: Any, set_name: str) -> dict:
    return match(left, "@" + set_name)


def anon(values: Iterable[Any]) -> dict:
    return {"set": list(values)}


def counter(name: str) -> dict:
    return {"counter": name}


def net_value(net: Network | Address) -> Any:
    """An address or prefix as libnftables JSON wants it."""
    if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if net.prefixlen == net.max_prefixlen:
            return str(net.network_address)
        return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    return str(net)


def element(value: Any, timeout: int | None = None) -> Any:
    if timeout is None:
        return value
    return {"elem": {"val": value, "timeout": int(timeout)}}


# --- objects ------------------------------------------------------------------------------

def _obj(table: str, **fields: Any) -> dict:
    return {"family": FAMILY, "table": table, **fields}


def table_cmd(verb: str, table: str) -> Cmd:
    return {verb: {"table": {"family": FAMILY, "name": table}}}


def meta_comment(session: str, ifname: str, mode: str) -> str:
    return f"{META_PREFIX} session={session} dev={ifname} mode={mode}"


def parse_meta(comment: str | None) -> dict[str, str] | None:
    """The fields of a base-chain rule comment, or None if it is not one of ours."""
    if not comment or not comment.startswith(META_PREFIX + " "):
        return None
    fields = dict(part.split("=", 1) for part in comment.split()[1:] if "=" in part)
    return fields if {"session", "dev", "mode"} <= fields.keys() else None


def skeleton(table: str, names: Names, ifname: str, *, replace_hook: bool = False) -> list[Cmd]:
    """Create (idempotently) the table and every object of the session.

    ``replace_hook`` deletes an existing base chain first: the device of a base chain cannot be
    changed, and within the one transaction the hook is never missing.
    """
    cmds: list[Cmd] = [table_cmd("add", table)]
    for name in names.counters:
        cmds.append({"add": {"counter": _obj(table, name=name)}})
    for suffix, (typ, flags) in SETS.items():
        spec = _obj(table, name=names.set(suffix), type=typ)
        if flags:
            spec["flags"] = list(flags)
        cmds.append({"add": {"set": spec}})
    cmds.append({"add": {"chain": _obj(table, name=names.policy)}})
    if replace_hook:
        cmds.append({"flush": {"chain": _obj(table, name=names.hook)}})
        cmds.append({"delete": {"chain": _obj(table, name=names.hook)}})
    cmds.append({"add": {"chain": _obj(table, name=names.hook, type="filter", hook="ingress",
                                       dev=ifname, prio=HOOK_PRIORITY, policy="drop")}})
    return cmds


def _rule(table: str, chain: str, comment: str, expr: Expr) -> Cmd:
    return {"add": {"rule": _obj(table, chain=chain, comment=comment, expr=expr)}}


def _set_elements(table: str, set_name: str, values: Sequence[Any]) -> list[Cmd]:
    if not values:
        return []
    return [{"add": {"element": _obj(table, name=set_name, elem=list(values))}}]


# --- the policy chain ---------------------------------------------------------------------

#: a DHCPv4 client's request (discover, request, renew), from port 68 to port 67
DHCP: Expr = [match(L4PROTO, "udp"), match({"payload": {"protocol": "udp", "field": "sport"}}, 68),
              match({"payload": {"protocol": "udp", "field": "dport"}}, 67)]
#: every mode with a NIC lets it through, and so does the pending state: the container's first
#: DHCP discover, sent the moment it starts, is then answered at once instead of being dropped
#: and retried a second later (the agent waits for its address)
DHCP_BROADCAST: tuple[str, Expr] = ("dhcp to broadcast", [match(daddr(4), "255.255.255.255"), *DHCP, ACCEPT])


def policy_rules(names: Names, policy: Policy) -> list[tuple[str, Expr]]:
    """(comment, expression) of every rule of ``<key>.policy``, in order."""
    n = names
    rules: list[tuple[str, Expr]] = []
    tcp_udp = match(L4PROTO, anon(["tcp", "udp"]))

    # 1. run-time blocks from the response engine, in every mode
    for v in (4, 6):
        rules.append(("runtime block: address", [in_set(daddr(v), n.set(f"deny{v}")),
                                                 counter(n.counter("blocked")), DROP]))
        rules.append(("runtime block: address and port", [
            tcp_udp, in_set({"concat": [daddr(v), DPORT]}, n.set(f"denyport{v}")),
            counter(n.counter("blocked")), DROP]))
    if policy.mode == "open":
        rules.append(("mode open: everything else passes", [counter(n.counter("passed")), ACCEPT]))
        return rules

    # 2. cloud metadata, whatever else would allow it
    meta4, meta6 = metadata_addresses()
    rules.append(("cloud metadata", [match(daddr(4), anon(str(a) for a in meta4)),
                                     counter(n.counter("metadata")), DROP]))
    rules.append(("cloud metadata", [match(daddr(6), anon(str(a) for a in meta6)),
                                     counter(n.counter("metadata")), DROP]))

    # 3. fragments: a later fragment has no ports, so port rules cannot see it
    rules.append(("ip fragment", [
        match({"&": [{"payload": {"protocol": "ip", "field": "frag-off"}}, 0x3FFF]}, 0, "!="),
        counter(n.counter("fragment")), DROP]))
    rules.append(("ipv6 fragment", [match({"exthdr": {"name": "frag"}}, True),
                                    counter(n.counter("fragment")), DROP]))

    # 4. what the link itself needs: DHCP to the host or broadcast, IPv6 neighbour discovery
    rules.append(DHCP_BROADCAST)
    rules.append(("dhcp to the host", [in_set(daddr(4), n.set("host4")), *DHCP, ACCEPT]))
    rules.append(("dhcpv6 to all servers", [
        match(daddr(6), "ff02::1:2"), match(L4PROTO, "udp"),
        match({"payload": {"protocol": "udp", "field": "sport"}}, 546),
        match({"payload": {"protocol": "udp", "field": "dport"}}, 547), ACCEPT]))
    rules.append(("ipv6 neighbour discovery", [
        match({"payload": {"protocol": "icmpv6", "field": "type"}},
              anon(["nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert",
                    "mld-listener-report", "mld2-listener-report"])), ACCEPT]))

    # 5. services on the host that the session needs (address, protocol, port)
    for v in (4, 6):
        rules.append(("needed service", [
            in_set({"concat": [daddr(v), L4PROTO, DPORT]}, n.set(f"need{v}")),
            counter(n.counter("passed")), ACCEPT]))

    # 6. C2 and miner ports, to any destination
    if policy.block_ports:
        rules.append(("c2 or miner port", [tcp_udp, match(DPORT, anon(policy.block_ports)),
                                          counter(n.counter("c2port")), DROP]))

    if policy.mode == "allowlist":
        for v in (4, 6):
            for suffix in (f"allow{v}", f"allownet{v}"):
                rules.append((f"allowlist: {suffix}", [in_set(daddr(v), n.set(suffix)),
                                                       counter(n.counter("passed")), ACCEPT]))
        rules.append(("allowlist: not listed", [counter(n.counter("notallowed")), DROP]))
        return rules

    # restricted: the host's own addresses, then each blocked category, then the internet
    for v in (4, 6):
        rules.append(("host address", [in_set(daddr(v), n.set(f"host{v}")),
                                       counter(n.counter("host")), DROP]))
    for category in BLOCKED:
        v4, v6 = category_networks(category)
        for v, nets in ((4, v4), (6, v6)):
            if nets:
                rules.append((f"{category} range", [match(daddr(v), anon(net_value(x) for x in nets)),
                                                    counter(n.counter(category)), DROP]))
    rules.append(("mode restricted: internet passes", [counter(n.counter("passed")), ACCEPT]))
    return rules


# --- batches ------------------------------------------------------------------------------

def _split(addrs: Iterable[Address | Network]) -> tuple[list, list]:
    items = list(addrs)
    return [a for a in items if a.version == 4], [a for a in items if a.version == 6]


def prepare_batch(table: str, names: Names, ifname: str, *, replace_hook: bool = False) -> dict:
    """Everything of the session, the base chain dropping every packet of ``ifname`` but the
    DHCP broadcasts (which every mode with a NIC lets through).

    The device need not exist yet (kernel 6.16 or later): the hook attaches when it appears.
    Run-time blocks of an earlier run are kept; a policy chain that was applied is emptied.
    """
    cmds = skeleton(table, names, ifname, replace_hook=replace_hook)
    cmds.append({"flush": {"chain": _obj(table, name=names.hook)}})
    cmds.append(_rule(table, names.hook, *DHCP_BROADCAST))
    cmds.append(_rule(table, names.hook, meta_comment(names.session, ifname, "pending"),
                      [counter(names.counter("pending")), DROP]))
    cmds.append({"flush": {"chain": _obj(table, name=names.policy)}})
    return {"nftables": cmds}


def apply_batch(table: str, names: Names, ifname: str, policy: Policy, *,
                resolution: Resolution | None = None,
                host_addresses: Iterable[Address] = (), replace_hook: bool = False) -> dict:
    """Install ``policy`` and switch the base chain to it, in one transaction.

    The sets the policy owns (host, need, allow) are emptied and refilled; the run-time block
    sets and the counters are kept.
    """
    n = names
    cmds = skeleton(table, n, ifname, replace_hook=replace_hook)
    for suffix in ("need4", "need6", "allow4", "allow6", "allownet4", "allownet6"):
        cmds.append({"flush": {"set": _obj(table, name=n.set(suffix))}})
    cmds += host_elements(table, n, host_addresses)
    for v in (4, 6):
        needs = sorted({(str(s.address), s.proto, s.port) for s in policy.needs if s.address.version == v})
        cmds += _set_elements(table, n.set(f"need{v}"), [{"concat": list(t)} for t in needs])
    if policy.mode == "allowlist":
        cmds += allow_elements(table, n, resolution or Resolution(), policy.dns_ttl)
        nets4, nets6 = _split(policy.allow_cidrs)
        for v, nets in ((4, nets4), (6, nets6)):
            merged = ipaddress.collapse_addresses(nets)
            cmds += _set_elements(table, n.set(f"allownet{v}"), [net_value(x) for x in merged])
    cmds.append({"flush": {"chain": _obj(table, name=n.policy)}})
    for comment, expr in policy_rules(n, policy):
        cmds.append(_rule(table, n.policy, comment, expr))
    cmds.append({"flush": {"chain": _obj(table, name=n.hook)}})
    cmds.append(_rule(table, n.hook, meta_comment(n.session, ifname, policy.mode),
                      [{"jump": {"target": n.policy}}]))
    return {"nftables": cmds}


def host_elements(table: str, names: Names, addresses: Iterable[Address]) -> list[Cmd]:
    """Replace the contents of the host address sets."""
    h4, h6 = _split(addresses)
    cmds: list[Cmd] = [{"flush": {"set": _obj(table, name=names.set(f"host{v}"))}} for v in (4, 6)]
    cmds += _set_elements(table, names.set("host4"), sorted({str(a) for a in h4}))
    cmds += _set_elements(table, names.set("host6"), sorted({str(a) for a in h6}))
    return cmds


def allow_elements(table: str, names: Names, resolution: Resolution, ttl: int) -> list[Cmd]:
    """Resolved addresses into the allow sets, each timing out after ``ttl`` seconds."""
    cmds: list[Cmd] = []
    cmds += _set_elements(table, names.set("allow4"), [element(str(a), ttl) for a in resolution.v4()])
    cmds += _set_elements(table, names.set("allow6"), [element(str(a), ttl) for a in resolution.v6()])
    return cmds


def refresh_batch(table: str, names: Names, resolution: Resolution, ttl: int,
                  present4: Iterable[str] = (), present6: Iterable[str] = ()) -> dict:
    """Re-add the resolved addresses with a fresh timeout. Addresses present now are deleted and
    added again in the same transaction (adding an existing element does not reset its
    timeout); addresses that no longer resolve are left to time out."""
    cmds: list[Cmd] = []
    want4 = {str(a) for a in resolution.v4()}
    want6 = {str(a) for a in resolution.v6()}
    for suffix, present, want in (("allow4", present4, want4), ("allow6", present6, want6)):
        again = sorted(set(present) & want)
        if again:
            cmds.append({"delete": {"element": _obj(table, name=names.set(suffix), elem=again)}})
    cmds += allow_elements(table, names, resolution, ttl)
    return {"nftables": cmds}


def block_batch(table: str, names: Names, address: Address, port: int | None = None,
                timeout: int | None = None, *, present: bool = False) -> dict:
    """Add a destination to the session's deny sets (TCP and UDP when a port is given).
    ``present``: it is there already, so delete and re-add it to apply the new timeout."""
    v = address.version
    if port is None:
        set_name, value = names.set(f"deny{v}"), str(address)
    else:
        set_name, value = names.set(f"denyport{v}"), {"concat": [str(address), port]}
    cmds: list[Cmd] = []
    if present:
        cmds.append({"delete": {"element": _obj(table, name=set_name, elem=[value])}})
    cmds.append({"add": {"element": _obj(table, name=set_name, elem=[element(value, timeout)])}})
    return {"nftables": cmds}


def unblock_batch(table: str, names: Names, address: Address, port: int | None = None) -> dict:
    v = address.version
    if port is None:
        set_name, value = names.set(f"deny{v}"), str(address)
    else:
        set_name, value = names.set(f"denyport{v}"), {"concat": [str(address), port]}
    return {"nftables": [{"delete": {"element": _obj(table, name=set_name, elem=[value])}}]}


def remove_batch(table: str, chains: Iterable[str], sets: Iterable[str], counters: Iterable[str],
                 *, drop_table: bool = False) -> dict:
    """Delete the given objects (rules first, then chains, sets, counters); with ``drop_table``
    the table too, which is then empty."""
    chains = list(chains)
    if drop_table:
        return {"nftables": [table_cmd("delete", table)]}
    cmds: list[Cmd] = []
    for c in chains:
        cmds.append({"flush": {"chain": _obj(table, name=c)}})
    # base chains (which jump) before the chains they jump to
    for c in sorted(chains, key=lambda c: not c.endswith(".hook")):
        cmds.append({"delete": {"chain": _obj(table, name=c)}})
    for s in sets:
        cmds.append({"delete": {"set": _obj(table, name=s)}})
    for c in counters:
        cmds.append({"delete": {"counter": _obj(table, name=c)}})
    return {"nftables": cmds}


__all__ = ["COUNTERS", "allow_elements", "apply_batch", "block_batch", "host_elements", "meta_comment",
           "parse_meta", "policy_rules", "prepare_batch", "refresh_batch", "remove_batch", "skeleton",
           "unblock_batch"]
