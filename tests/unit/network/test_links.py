"""Finding a container's process from its cgroup, and the host's own addresses (the veth look-ups
run in the root tier)."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from coi_sentinel.errors import NetworkError
from coi_sentinel.network import links
from coi_sentinel.network.links import container_pid

pytestmark = pytest.mark.unit


def test_container_pid_from_the_lxc_payload_cgroup(tmp_path):
    unified = tmp_path / "unified"
    base = unified / "lxc.payload.coi-aaaa1111-1"
    (base / "init.scope").mkdir(parents=True)
    (base / "cgroup.procs").write_text("")
    (base / "init.scope" / "cgroup.procs").write_text("4242\n4243\n")
    assert container_pid("coi-aaaa1111-1", roots=(unified, tmp_path)) == 4242
    (base / "cgroup.procs").write_text("77\n")
    assert container_pid("coi-aaaa1111-1", roots=(unified, tmp_path)) == 77


@pytest.mark.parametrize("name", ["coi-stopped-1", "../etc", "", "a/b"])
def test_no_process_or_bad_name_is_an_error(tmp_path, name):
    (tmp_path / "lxc.payload.coi-stopped-1").mkdir()
    (tmp_path / "lxc.payload.coi-stopped-1" / "cgroup.procs").write_text("")
    with pytest.raises(NetworkError):
        container_pid(name, roots=(tmp_path,))


def _rtattr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * ((-length) % 4)


def test_an_address_message_gives_our_end_of_the_link():
    head = struct.pack("=BBBBI", socket.AF_INET, 32, 0, 0, 7)
    peer, ours = socket.inet_aton("10.0.0.2"), socket.inet_aton("10.0.0.1")
    # point-to-point: IFA_ADDRESS is the peer's, IFA_LOCAL ours; an unknown attribute is skipped
    msg = head + _rtattr(1, peer) + _rtattr(99, b"xyz") + _rtattr(2, ours)
    assert links._address_of(msg) == ours
    assert links._address_of(head + _rtattr(1, peer)) == peer
    assert links._address_of(head) is None


def test_local_addresses_match_pyroute2s_view():
    """The plain netlink dump (no pyroute2 on a session's start) sees what pyroute2 sees."""
    pyroute2 = pytest.importorskip("pyroute2", reason="pyroute2 (python3-pyroute2) is not installed")
    seen = set()
    with pyroute2.IPRoute() as ipr:
        for msg in ipr.get_addr():
            value = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            seen.add(ipaddress.ip_address(value.split("%", 1)[0]))
    found = links.local_addresses()
    assert set(found) == seen and ipaddress.ip_address("127.0.0.1") in found
    assert found == sorted(found, key=lambda a: (a.version, a))
