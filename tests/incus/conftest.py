"""incus tier fixtures: see incus_support for what a test gets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from incus_support import AGENT_UID, Env, require_incus, stop_daemon, worker_socket
from support import remove_dead_status_files, status_files


@pytest.fixture(scope="session", autouse=True)
def worker_daemon():
    """Stop the daemon that this worker's monitored runs started, and remove the status files
    of the monitors its tests killed (nothing left behind)."""
    before = status_files()
    yield worker_socket()
    stop_daemon(worker_socket())
    remove_dead_status_files(before)


@pytest.fixture
def env(tmp_path: Path):
    require_incus()
    e = Env(tmp_path)
    yield e
    left = e.containers()
    if left:
        from coi_sentinel.host import incus
        from coi_sentinel.sessions.session import delete_container

        client = incus.connect()
        for name in left:
            delete_container(client, name)
    stale = e.remove_policies()        # after the containers: never a running one's
    if left:
        pytest.fail(f"containers left behind: {left}")
    if stale:
        pytest.fail(f"network policies left behind: {stale}")


@pytest.fixture(scope="session", autouse=True)
def no_packet_left_the_bridge():
    """After the incus tier (each xdist worker, at its end): the guard of the sealed bridge
    dropped nothing on its way off the machine (scripts/setup-incus.sh, COI_EGRESS=sealed)."""
    yield
    import os

    if os.geteuid() != 0:
        return
    from upstream import bridge_guard_leaks

    leaks = bridge_guard_leaks()
    assert not leaks or not any(leaks.values()), f"packets forwarded off the bridge: {leaks}"


ATTACK_C = Path(__file__).resolve().parents[1] / "bpf" / "programs" / "attack.c"


@pytest.fixture
def attack(env) -> str:
    """tests/bpf/programs/attack.c built static into the workspace (the busybox image has no
    libc to link to); its path inside the session."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (and libc6-dev's static libc) to build attack.c")
    exe = env.ws / "attack"
    p = subprocess.run(["gcc", "-static", "-O2", "-o", str(exe), str(ATTACK_C)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot link attack.c statically: {p.stderr.strip()[:200]}")
    os.chown(exe, AGENT_UID, AGENT_UID)
    return "/workspace/attack"
