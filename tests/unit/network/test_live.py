"""Reading a table back from a listing the kernel gave (tests/fixtures/network/listing.json,
recorded by make_listing.py next to it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coi_sentinel.network.live import element_text, parse_table
from coi_sentinel.network.naming import COUNTERS, SETS, Names, session_key

pytestmark = pytest.mark.unit
LISTING = json.loads((Path(__file__).resolve().parents[2] / "fixtures/network/listing.json").read_text())


def test_sessions_are_grouped_with_their_meta():
    state = parse_table(LISTING)
    assert state.exists and not state.foreign and not state.empty
    odd = session_key("Odd.Name")
    assert set(state.sessions) == {"coi-aaaa1111-1", odd}
    a = state.sessions["coi-aaaa1111-1"]
    assert (a.session, a.device, a.mode) == ("coi-aaaa1111-1", "coi0000000001", "restricted")
    assert a.chains == set(Names.of("coi-aaaa1111-1").chains)
    assert set(a.sets) == set(SETS) and set(a.counters) == set(COUNTERS)
    b = state.sessions[odd]
    assert (b.session, b.device, b.mode) == ("Odd.Name", "coi0000000002", "pending")
    assert [r.verdict for r in b.rules if r.chain.endswith(".hook")] == ["drop"]
    assert not [r for r in b.rules if r.chain.endswith(".policy")]


def test_set_elements_and_counters():
    a = parse_table(LISTING).sessions["coi-aaaa1111-1"]
    assert a.elements("denyport4") == ["203.0.113.9 . 4444"]
    assert a.elements("deny6") == ["2001:db8::66"]
    assert a.elements("need4") == ["10.123.45.1 . tcp . 3128"]
    assert a.elements("host4") == ["10.123.45.1"] and a.elements("host6") == ["fd00::2"]
    assert element_text(a.sets["denyport4"][0]) == ("203.0.113.9 . 4444", 599)
    assert a.counters["passed"] == (0, 0)
    policy = [r for r in a.rules if r.chain == "coi-aaaa1111-1.policy"]
    assert policy[-1].comment == "mode restricted: internet passes" and policy[-1].verdict == "accept"


def test_unknown_objects_are_foreign_and_keep_the_table():
    doc = {"nftables": [*LISTING["nftables"],
                        {"set": {"family": "inet", "table": "t", "name": "someone_elses", "type": "ipv4_addr"}}]}
    state = parse_table(doc)
    assert state.foreign == ["set someone_elses"] and not state.empty


def test_missing_and_empty_tables():
    assert parse_table(None).exists is False
    empty = parse_table({"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "t"}}]})
    assert empty.exists and empty.empty


def test_element_text_forms():
    assert element_text("1.2.3.4") == ("1.2.3.4", None)
    assert element_text({"prefix": {"addr": "10.0.0.0", "len": 8}}) == ("10.0.0.0/8", None)
    assert element_text({"elem": {"val": {"concat": ["::1", "udp", 53]}, "expires": 5}}) == ("::1 . udp . 53", 5)
