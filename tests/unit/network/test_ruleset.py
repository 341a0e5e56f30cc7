"""The libnftables JSON of each batch: one document per change, the right objects, rules in
the right order, v4 and v6 everywhere. No kernel needed."""

from __future__ import annotations

import ipaddress
import json

import pytest

from coi_sentinel.network import ruleset
from coi_sentinel.network.naming import COUNTERS, SETS, Names
from coi_sentinel.network.policy import Policy, Resolution
from coi_sentinel.network.ranges import C2_PORTS

pytestmark = pytest.mark.unit

T = "coi_sentinel"
N = Names.of("coi-4179a5d5-1")
IF = "coi0123456789a"


def cmds(batch, verb=None, kind=None):
    out = []
    for c in batch["nftables"]:
        (v, body), = c.items()
        (k, obj), = body.items()
        if (verb is None or v == verb) and (kind is None or k == kind):
            out.append((v, k, obj))
    return out


def rules(batch, chain):
    return [obj for _v, _k, obj in cmds(batch, "add", "rule") if obj["chain"] == chain]


def refs(expr, key):
    """Every value under ``key`` anywhere in an expression."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == key:
                    found.append(v)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(expr)
    return found


def set_refs(expr):
    return [r["right"][1:] for r in refs(expr, "match") if isinstance(r["right"], str) and r["right"].startswith("@")]


def verdict(rule):
    return next(k for e in rule["expr"] for k in e if k in ("accept", "drop", "reject", "jump"))


def test_prepare_is_one_batch_that_creates_everything_and_drops():
    b = ruleset.prepare_batch(T, N, IF)
    json.dumps(b)                                       # plain JSON
    assert list(b) == ["nftables"]
    assert b["nftables"][0] == {"add": {"table": {"family": "inet", "name": T}}}
    assert all(obj["family"] == "inet" and obj.get("table", T) == T for _v, _k, obj in cmds(b))
    assert {o["name"] for _v, _k, o in cmds(b, "add", "counter")} == set(N.counters)
    sets = {o["name"]: o for _v, _k, o in cmds(b, "add", "set")}
    assert set(sets) == set(N.sets)
    assert sets[N.set("allownet4")]["flags"] == ["interval"] and sets[N.set("deny6")]["flags"] == ["timeout"]
    assert sets[N.set("need6")]["type"] == ["ipv6_addr", "inet_proto", "inet_service"]
    hook = next(o for _v, _k, o in cmds(b, "add", "chain") if o["name"] == N.hook)
    assert hook == {"family": "inet", "table": T, "name": N.hook, "type": "filter", "hook": "ingress",
                    "dev": IF, "prio": ruleset.HOOK_PRIORITY, "policy": "drop"}
    dhcp, drop = rules(b, N.hook)       # the container's DHCP broadcasts, then nothing
    assert dhcp["expr"][-1] == {"accept": None} and ruleset.parse_meta(dhcp["comment"]) is None
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                      "right": "255.255.255.255"}} in dhcp["expr"]
    assert drop["expr"] == [{"counter": N.counter("pending")}, {"drop": None}]
    assert ruleset.parse_meta(drop["comment"]) == {"session": N.session, "dev": IF, "mode": "pending"}
    # the hook chain is emptied before its one rule goes in, the policy chain is emptied
    order = [(v, k, o.get("name")) for v, k, o in cmds(b) if k == "chain"]
    assert order.index(("flush", "chain", N.hook)) > order.index(("add", "chain", N.hook))
    assert ("flush", "chain", N.policy) in order
    assert not cmds(b, "delete")


def test_moving_to_another_interface_replaces_the_hook_in_the_same_batch():
    b = ruleset.prepare_batch(T, N, "coinew", replace_hook=True)
    seq = [(v, o["name"]) for v, k, o in cmds(b) if k == "chain" and o["name"] == N.hook]
    assert seq[:3] == [("flush", N.hook), ("delete", N.hook), ("add", N.hook)]


def apply(policy, **kw):
    kw.setdefault("host_addresses", [ipaddress.ip_address("10.123.45.1"), ipaddress.ip_address("fd00::2")])
    return ruleset.apply_batch(T, N, IF, policy, **kw)


def test_restricted_rules_in_order_v4_and_v6():
    b = apply(Policy(needs=("10.123.45.1:3128", "[fd00::2]:53/udp")))
    pol = rules(b, N.policy)
    comments = [r["comment"] for r in pol]
    first = lambda c: comments.index(c)  # noqa: E731
    assert first("runtime block: address") < first("cloud metadata") < first("ip fragment") \
        < first("dhcp to broadcast") < first("needed service") < first("c2 or miner port") \
        < first("host address") < first("private range") < first("linklocal range") \
        < first("cgnat range") < first("special range") < first("mode restricted: internet passes")
    assert comments[-1] == "mode restricted: internet passes" and verdict(pol[-1]) == "accept"
    # each blocking category has a v4 and a v6 rule (cgnat too, through NAT64) and its counter
    for c in ("private range", "linklocal range", "cgnat range", "special range", "host address",
              "cloud metadata", "runtime block: address"):
        fams = {p["protocol"] for r in pol if r["comment"] == c for p in refs(r["expr"], "payload")
                if p["field"] == "daddr"}
        assert fams == {"ip", "ip6"}, c
    for r in pol:
        if r["comment"].endswith(" range"):
            assert verdict(r) == "drop"
            assert {"counter": N.counter(r["comment"].split()[0])} in r["expr"]
    meta = [r for r in pol if r["comment"] == "cloud metadata"]
    values = {v for r in meta for v in refs(r["expr"], "set")[0]}
    assert {"169.254.169.254", "100.100.100.200", "fd00:ec2::254", "fd20:ce::254"} <= values
    c2 = next(r for r in pol if r["comment"] == "c2 or miner port")
    assert refs(c2["expr"], "set")[0] == ["tcp", "udp"]
    assert refs(c2["expr"], "set")[1] == sorted(C2_PORTS)
    # the hook now jumps to the policy chain, with the mode in its comment
    hook = rules(b, N.hook)
    assert len(hook) == 1 and hook[0]["expr"] == [{"jump": {"target": N.policy}}]
    assert ruleset.parse_meta(hook[0]["comment"])["mode"] == "restricted"


def test_every_rule_references_only_the_sessions_own_sets_and_counters():
    for policy in (Policy(), Policy(mode="open"), Policy(mode="allowlist", allow_domains=("a.test",))):
        for r in rules(apply(policy), N.policy):
            assert set(set_refs(r["expr"])) <= set(N.sets), r
            named = [c for c in refs(r["expr"], "counter") if isinstance(c, str)]
            assert set(named) <= set(N.counters), r
            assert verdict(r) in ("accept", "drop")          # never reject: see ruleset.DROP


def test_restricted_fills_host_and_need_sets_and_empties_the_others():
    b = apply(Policy(needs=("10.123.45.1:3128", "[fd00::2]:53/udp")))
    flushed = {o["name"] for v, k, o in cmds(b, "flush", "set")}
    assert flushed == {N.set(s) for s in ("host4", "host6", "need4", "need6", "allow4", "allow6",
                                          "allownet4", "allownet6")}
    assert N.set("deny4") not in flushed and N.set("denyport6") not in flushed   # blocks are kept
    elems = {o["name"]: o["elem"] for v, k, o in cmds(b, "add", "element")}
    assert elems[N.set("host4")] == ["10.123.45.1"] and elems[N.set("host6")] == ["fd00::2"]
    assert elems[N.set("need4")] == [{"concat": ["10.123.45.1", "tcp", 3128]}]
    assert elems[N.set("need6")] == [{"concat": ["fd00::2", "udp", 53]}]
    # elements go in after their set is emptied
    seq = [(v, k) for v, k, o in cmds(b) if k in ("set", "element") and o["name"] == N.set("host4")]
    assert seq == [("add", "set"), ("flush", "set"), ("add", "element")]


def test_allowlist_ends_in_a_counted_drop_and_fills_allow_sets_with_timeouts():
    res = Resolution({"a.test": (ipaddress.ip_address("198.51.100.7"), ipaddress.ip_address("2001:db8::7"))})
    p = Policy(mode="allowlist", allow_domains=("a.test",), dns_ttl=120,
               allow_cidrs=("203.0.113.0/25", "203.0.113.128/25", "2001:db8:1::/48"))
    b = apply(p, resolution=res)
    pol = rules(b, N.policy)
    assert pol[-1]["expr"] == [{"counter": N.counter("notallowed")}, {"drop": None}]
    allow = [r for r in pol if r["comment"].startswith("allowlist: allow")]
    assert {s for r in allow for s in set_refs(r["expr"])} == {N.set(s) for s in ("allow4", "allow6", "allownet4", "allownet6")}
    assert not any(r["comment"].endswith(" range") or r["comment"] == "host address" for r in pol)
    assert any(r["comment"] == "cloud metadata" for r in pol)
    elems = {o["name"]: o["elem"] for v, k, o in cmds(b, "add", "element")}
    assert elems[N.set("allow4")] == [{"elem": {"val": "198.51.100.7", "timeout": 120}}]
    assert elems[N.set("allow6")] == [{"elem": {"val": "2001:db8::7", "timeout": 120}}]
    # the two /25 are merged, so the interval set gets no overlapping or adjacent elements
    assert elems[N.set("allownet4")] == [{"prefix": {"addr": "203.0.113.0", "len": 24}}]
    assert elems[N.set("allownet6")] == [{"prefix": {"addr": "2001:db8:1::", "len": 48}}]


def test_open_blocks_only_run_time_blocks():
    pol = rules(apply(Policy(mode="open")), N.policy)
    assert [r["comment"] for r in pol] == ["runtime block: address", "runtime block: address and port"] * 2 + \
        ["mode open: everything else passes"]


def test_no_c2_rule_when_no_ports_are_blocked():
    pol = rules(apply(Policy(block_ports=())), N.policy)
    assert not any(r["comment"] == "c2 or miner port" for r in pol)


def test_block_batches():
    a4, a6 = ipaddress.ip_address("203.0.113.9"), ipaddress.ip_address("2001:db8::9")
    assert ruleset.block_batch(T, N, a4)["nftables"] == [
        {"add": {"element": {"family": "inet", "table": T, "name": N.set("deny4"), "elem": ["203.0.113.9"]}}}]
    b = ruleset.block_batch(T, N, a6, 4444, timeout=30, present=True)
    assert [next(iter(c)) for c in b["nftables"]] == ["delete", "add"]
    assert b["nftables"][1]["add"]["element"]["name"] == N.set("denyport6")
    assert b["nftables"][1]["add"]["element"]["elem"] == [
        {"elem": {"val": {"concat": ["2001:db8::9", 4444]}, "timeout": 30}}]
    u = ruleset.unblock_batch(T, N, a6, 4444)
    assert u["nftables"][0]["delete"]["element"]["elem"] == [{"concat": ["2001:db8::9", 4444]}]


def test_refresh_deletes_and_re_adds_present_addresses_to_renew_their_timeout():
    res = Resolution({"a.test": (ipaddress.ip_address("198.51.100.7"), ipaddress.ip_address("198.51.100.8"))})
    b = ruleset.refresh_batch(T, N, res, 60, present4=["198.51.100.7", "198.51.100.1"])
    assert b["nftables"][0] == {"delete": {"element": {"family": "inet", "table": T, "name": N.set("allow4"),
                                                       "elem": ["198.51.100.7"]}}}
    assert b["nftables"][1]["add"]["element"]["elem"] == [
        {"elem": {"val": "198.51.100.7", "timeout": 60}}, {"elem": {"val": "198.51.100.8", "timeout": 60}}]


def test_remove_flushes_then_deletes_hook_before_policy_chain():
    b = ruleset.remove_batch(T, [N.policy, N.hook], N.sets, N.counters)
    seq = [(v, k, o["name"]) for v, k, o in cmds(b)]
    assert seq[:2] == [("flush", "chain", N.policy), ("flush", "chain", N.hook)]
    assert seq[2:4] == [("delete", "chain", N.hook), ("delete", "chain", N.policy)]
    assert {n for v, k, n in seq if k == "set"} == set(N.sets)
    assert {n for v, k, n in seq if k == "counter"} == set(N.counters)
    assert len(seq) == 4 + len(SETS) + len(COUNTERS)
    assert ruleset.remove_batch(T, [N.hook], [], [], drop_table=True) == {
        "nftables": [{"delete": {"table": {"family": "inet", "name": T}}}]}


@pytest.mark.parametrize("comment,want", [
    ("coi-sentinel session=a dev=b mode=open", {"session": "a", "dev": "b", "mode": "open"}),
    ("coi-sentinel session=a dev=b", None),
    ("something else", None),
    ("", None),
    (None, None),
])
def test_parse_meta(comment, want):
    assert ruleset.parse_meta(comment) == want
