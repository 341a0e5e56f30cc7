"""io_uring in session containers (issue 12): denied by default through Incus'
security.syscalls.deny, allowed by an agent profile with `io_uring: true`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.incus

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
