"""A network policy and a resolution travel to the daemon as JSON and back unchanged."""

import json

import pytest

from coi_sentinel.errors import NetworkError
from coi_sentinel.network.policy import Policy, Resolution, resolve

pytestmark = pytest.mark.unit


def test_a_policy_comes_back_as_it_went():
    p = Policy(mode="allowlist", allow_domains=("api.example.com",),
               allow_cidrs=("10.0.0.0/8", "fd00::/8"), needs=("10.123.45.1:3128/tcp", "[fd42::1]:53/udp"),
               block_ports=(4444, 1337), dns_ttl=600)
    assert Policy.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert Policy.from_dict(Policy().to_dict()) == Policy()


@pytest.mark.parametrize("bad", [None, [], {"mode": "open", "extra": 1}, {"needs": "1.2.3.4:53"},
                                 {"mode": "wide-open"}, {"mode": "open", "allow_domains": ["a.com"]}])
def test_anything_else_is_refused(bad):
    with pytest.raises(NetworkError):
        Policy.from_dict(bad)


def test_a_resolution_comes_back_as_it_went():
    r = resolve(["a.example", "b.example"],
                lambda d: ["192.0.2.1", "2001:db8::1"] if d == "a.example" else [])
    assert Resolution.from_dict(json.loads(json.dumps(r.as_dict()))) == r
    with pytest.raises(NetworkError):
        Resolution.from_dict({"addresses": {"a.example": ["not an address"]}, "failed": []})
