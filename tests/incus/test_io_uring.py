"""io_uring in session containers (issue 12): denied by default through Incus'
security.syscalls.deny, allowed by an agent profile with `io_uring: true`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from incus_support import AGENT_UID

pytestmark = pytest.mark.incus

ATTACK_C = Path(__file__).resolve().parents[1] / "bpf" / "programs" / "attack.c"


@pytest.fixture
def attack(env) -> str:
    """attack.c built static into the workspace (the busybox image has no libc to link to)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (and libc6-dev's static libc) to build attack.c")
    exe = env.ws / "attack"
    p = subprocess.run(["gcc", "-static", "-O2", "-o", str(exe), str(ATTACK_C)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot link attack.c statically: {p.stderr.strip()[:200]}")
    os.chown(exe, AGENT_UID, AGENT_UID)
    return "/workspace/attack"


def test_io_uring_is_denied_in_a_session_by_default(env, attack):
    r = env.run("run", "--", attack, "uring-write", "/workspace/out", "via the ring")
    # ENOSYS, as on a kernel without io_uring: probing runtimes fall back instead of dying
    assert r.code == 3, (r.out, r.err)
    assert "io_uring_setup: Function not implemented" in r.err, r.err
    assert not (env.ws / "out").exists()


def test_a_profile_may_allow_io_uring(env, attack):
    env.profile("uring", "name: uring\ndescription: io_uring allowed\ncommand: [sh]\nio_uring: true\n")
    r = env.run("run", "--tool", "uring", "--", attack, "uring-write", "/workspace/out", "via the ring")
    assert r.code == 0, r.err
    assert (env.ws / "out").read_text() == "via the ring"
