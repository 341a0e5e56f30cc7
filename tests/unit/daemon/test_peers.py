"""What the daemon lets a peer that is not root name (daemon/peers.py, daemon/network.py)."""

import os
import subprocess
import sys

import pytest

from coi_sentinel.daemon import peers
from coi_sentinel.daemon import protocol as P
from coi_sentinel.daemon.network import Policies
from coi_sentinel.host import paths

pytestmark = pytest.mark.unit


def test_the_audit_log_of_a_peer_is_the_daemons_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("COI_SENTINEL_AUDIT_ROOT", str(tmp_path / "audit"))
    want = tmp_path / "audit" / "1234" / "coi-1a2b3c4d-1.jsonl"
    assert peers.audit_path(1234, "coi-1a2b3c4d-1") == want == paths.user_audit_dir(1234) / want.name
    peers.check_audit(1234, "coi-1a2b3c4d-1", str(want))
    for asked in ("/etc/shadow", str(tmp_path / "audit" / "99" / want.name),
                  str(want.parent / ".." / "1234" / want.name)):
        with pytest.raises(P.DaemonError) as err:
            peers.check_audit(1234, "coi-1a2b3c4d-1", asked)
        assert err.value.code == P.DENIED
    peers.check_audit(0, "coi-1a2b3c4d-1", "/anywhere/root/likes.jsonl")


def test_process_uid_of_a_living_and_of_a_gone_process():
    assert peers.process_uid(os.getpid()) == os.getuid()
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert peers.process_uid(p.pid) is None


def test_a_name_that_is_no_session_name_is_refused_before_anything(tmp_path):
    pol = Policies(tmp_path)
    for name in ("../../etc/passwd", "A", "", "x" * 64, 7):
        with pytest.raises(P.DaemonError) as err:
            pol.handle({"do": "remove", "name": name}, 1000, client=None)
        assert err.value.code == P.USAGE


def test_only_its_maker_removes_a_noted_policy(tmp_path):
    pol = Policies(tmp_path)
    pol._note("coi-1a2b3c4d-1", 1000)
    with pytest.raises(P.DaemonError) as err:
        pol.handle({"do": "remove", "name": "coi-1a2b3c4d-1"}, 1001, client=None)
    assert err.value.code == P.DENIED and pol.maker("coi-1a2b3c4d-1") == 1000


def test_a_peer_hooks_only_the_veth_its_session_name_pins(tmp_path):
    from coi_sentinel.network import host_ifname

    pol = Policies(tmp_path)
    other = host_ifname("coi-99999999-1")
    for do in ("prepare", "apply"):
        with pytest.raises(P.DaemonError) as err:
            pol.handle({"do": do, "name": "coi-1a2b3c4d-1", "ifname": other,
                        "policy": {"mode": "open"}}, 1000, client=None)
        assert err.value.code == P.DENIED and host_ifname("coi-1a2b3c4d-1") in str(err.value)
    assert pol.noted() == {}
