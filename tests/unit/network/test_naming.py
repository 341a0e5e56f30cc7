"""Session keys, object names and the pinned veth name."""

from __future__ import annotations

import pytest

from coi_sentinel.errors import NetworkError
from coi_sentinel.network.naming import COUNTERS, SETS, Names, host_ifname, owner_key, session_key

pytestmark = pytest.mark.unit


def test_a_session_name_that_is_already_safe_is_its_own_key():
    assert session_key("coi-4179a5d5-1") == "coi-4179a5d5-1"
    assert session_key("a") == "a"


@pytest.mark.parametrize("name", ["Coi-1", "coi.1", "9lives", "x" * 60, "a:b@c+d", "_x", "-x"])
def test_other_names_are_sanitised_with_a_hash(name):
    key = session_key(name)
    assert key != name
    assert key[0].isalpha() and "." not in key and len(key) <= 49
    assert set(key) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
    assert key == session_key(name)                      # stable


def test_names_that_sanitise_alike_get_different_keys():
    assert session_key("Coi.1") != session_key("coi:1") != session_key("COI@1")


@pytest.mark.parametrize("bad", ["", "a b", "a\nb", "a/b", 'a"b', "x" * 129, None, 3])
def test_unusable_session_names_are_refused(bad):
    with pytest.raises(NetworkError):
        session_key(bad)


def test_object_names_all_start_with_the_key_and_a_dot():
    n = Names.of("coi-4179a5d5-1")
    every = [*n.chains, *n.sets, *n.counters]
    assert len(set(every)) == 2 + len(SETS) + len(COUNTERS)
    assert all(owner_key(o) == "coi-4179a5d5-1" for o in every)
    assert n.hook == "coi-4179a5d5-1.hook" and n.policy == "coi-4179a5d5-1.policy"
    with pytest.raises(KeyError):
        n.set("nosuch")
    with pytest.raises(KeyError):
        n.counter("nosuch")


@pytest.mark.parametrize("name", ["hook", "coi", ".x", "Bad.x", "9a.b", "a."])
def test_names_not_made_by_us_have_no_owner(name):
    assert owner_key(name) is None


def test_host_ifname_is_a_valid_stable_interface_name():
    a, b = host_ifname("coi-4179a5d5-1"), host_ifname("coi-4179a5d5-2")
    assert a != b and a == host_ifname("coi-4179a5d5-1")
    assert len(a) <= 15 and a.startswith("coi") and a.isalnum()
