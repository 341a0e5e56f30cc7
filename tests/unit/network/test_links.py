"""Finding a container's process from its cgroup (the netlink parts run in the root tier)."""

from __future__ import annotations

import pytest

from coi_sentinel.errors import NetworkError
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
