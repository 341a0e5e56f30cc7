"""A session's NIC devices and policy from its config (no Incus, no nftables)."""

import dataclasses

import pytest

from coi_sentinel.errors import SessionError
from coi_sentinel.network import C2_PORTS, host_ifname
from coi_sentinel.sessions import config
from coi_sentinel.sessions.network import ProfileNic, plan_nic, policy_of

pytestmark = pytest.mark.unit

NAME = "coi-1a2b3c4d-1"
SENTBR0 = ProfileNic("eth0", {"type": "nic", "network": "sentbr0", "name": "eth0"}, True)


def cfg(**values) -> config.Config:
    return dataclasses.replace(config.Config(), **values)


def test_the_profile_nic_is_copied_with_its_host_name_pinned():
    plan = plan_nic(cfg(), NAME, [SENTBR0])
    assert plan.ifname == host_ifname(NAME) and plan.device == "eth0"
    assert plan.devices == {"eth0": {"type": "nic", "network": "sentbr0", "name": "eth0",
                                     "host_name": host_ifname(NAME)}}


def test_network_bridge_replaces_every_profile_nic():
    extra = ProfileNic("lan", {"type": "nic", "nictype": "macvlan", "parent": "eno1"}, False)
    plan = plan_nic(cfg(network_bridge="cbtest"), NAME, [SENTBR0, extra])
    assert plan.devices == {"lan": {"type": "none"},
                            "eth0": {"type": "nic", "nictype": "bridged", "parent": "cbtest",
                                     "name": "eth0", "host_name": host_ifname(NAME)}}
    assert (plan.ifname, plan.device) == (host_ifname(NAME), "eth0")


def test_mode_none_removes_every_nic_and_has_no_policy():
    extra = ProfileNic("eth1", {"type": "nic", "nictype": "bridged", "parent": "br1"}, True)
    plan = plan_nic(cfg(network="none", network_bridge="cbtest"), NAME, [SENTBR0, extra])
    assert plan.devices == {"eth0": {"type": "none"}, "eth1": {"type": "none"}}
    assert plan.ifname is None
    assert policy_of(cfg(network="none")) is None


def test_a_profile_without_a_nic_gives_no_network():
    plan = plan_nic(cfg(), NAME, [])
    assert (dict(plan.devices), plan.ifname) == ({}, None)


@pytest.mark.parametrize("nics, message", [
    ([SENTBR0, ProfileNic("eth1", {"type": "nic", "network": "sentbr0"}, True)], "has 2 NICs"),
    ([ProfileNic("eth0", {"type": "nic", "nictype": "macvlan", "parent": "eno1"}, False)],
     "is not on a bridge"),
])
def test_nics_the_policy_cannot_cover_are_refused(nics, message):
    with pytest.raises(SessionError, match=message):
        plan_nic(cfg(), NAME, nics)


def test_policy_of_each_mode():
    base = dict(network_allow_domains=("pypi.org",), network_allow_cidrs=("198.51.100.0/24",),
                network_needs=("10.123.45.1:3128/tcp",), network_block_ports=(2222,))
    allow = policy_of(cfg(network="allowlist", **base))
    assert allow.mode == "allowlist" and allow.allow_domains == ("pypi.org",)
    assert [str(c) for c in allow.allow_cidrs] == ["198.51.100.0/24"]
    assert [str(n) for n in allow.needs] == ["10.123.45.1:3128/tcp"]
    assert set(allow.block_ports) == set(C2_PORTS) | {2222}
    restricted = policy_of(cfg(**base))       # the allow lists count only in allowlist mode
    assert restricted.mode == "restricted" and restricted.allow_domains == () and restricted.allow_cidrs == ()
    assert set(restricted.block_ports) == set(C2_PORTS) | {2222}
    assert policy_of(cfg(network="open")).mode == "open"
