"""The ACL that lets the agent's unprivileged host uid write a root-owned workspace (issue
17), on a real file system: entries added, nothing else changed, symlinks left alone."""

from __future__ import annotations

import os
import stat

import pytest

from coi_sentinel.errors import WorkspaceError
from coi_sentinel.sessions import acl

pytestmark = pytest.mark.unit

AGENT = 1001000


def _entries(path, name=acl.ACCESS):
    return acl.parse(os.getxattr(path, name, follow_symlinks=False))


@pytest.fixture
def tree(tmp_path):
    ws = tmp_path / "ws"
    (ws / "src/deep").mkdir(parents=True)
    (ws / "README").write_text("x")
    (ws / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(ws / "run.sh", 0o755)
    (ws / "src/deep/f.py").write_text("y")
    os.symlink("/etc/passwd", ws / "link")
    try:
        os.setxattr(ws, acl.ACCESS, acl.build(acl._from_mode(0o755)))
    except OSError as err:
        pytest.skip(f"{tmp_path} has no POSIX ACLs: {err.strerror}")
    return ws


def test_grant_tree_adds_the_agent_and_keeps_the_rest(tree):
    modes = {p: stat.S_IMODE(os.lstat(p).st_mode) for p in tree.rglob("*")}
    assert not acl.has_user(tree, AGENT)
    n = acl.grant_tree(tree, AGENT)
    assert n == 6                                    # ws, src, deep, 3 files; not the link
    assert acl.has_user(tree, AGENT)
    assert (acl.USER, 6, AGENT) in _entries(tree / "README")          # rw-: not executable
    assert (acl.USER, 7, AGENT) in _entries(tree / "run.sh")          # rwx: it was
    assert (acl.USER, 7, AGENT) in _entries(tree / "src/deep", acl.DEFAULT)
    readme = dict(((t, i), p) for t, p, i in _entries(tree / "README"))
    assert readme[(acl.USER_OBJ, 0xFFFFFFFF)] == 6 and readme[(acl.OTHER, 0xFFFFFFFF)] == 4
    assert readme[(acl.GROUP_OBJ, 0xFFFFFFFF)] == 4          # the group's own entry is unchanged
    with pytest.raises(OSError):
        os.getxattr(tree / "link", acl.ACCESS, follow_symlinks=False)
    for p, mode in modes.items():
        if not p.is_symlink():
            assert stat.S_IMODE(os.lstat(p).st_mode) & 0o707 == mode & 0o707   # owner, others kept


def test_protected_paths_get_no_grant(tree):
    (tree / ".venv/bin").mkdir(parents=True)
    (tree / ".venv/bin/coi-sentinel").write_text("#!/bin/sh\n")
    acl.grant_tree(tree, AGENT, skip=(".venv", ".git/hooks"))
    assert acl.has_user(tree, AGENT)
    for p in (tree / ".venv", tree / ".venv/bin/coi-sentinel"):
        with pytest.raises(OSError):
            os.getxattr(p, acl.ACCESS)


def test_a_new_file_inherits_the_grant(tree):
    acl.grant_tree(tree, AGENT)
    (tree / "src/new.txt").write_text("later")
    assert any(t == acl.USER and i == AGENT for t, _p, i in _entries(tree / "src/new.txt"))


def test_granting_twice_changes_nothing(tree):
    acl.grant_tree(tree, AGENT)
    before = os.getxattr(tree / "README", acl.ACCESS)
    acl.grant_tree(tree, AGENT)
    assert os.getxattr(tree / "README", acl.ACCESS) == before


def test_no_acl_support_names_the_fix():
    """On ramfs (no xattrs), in a user and mount namespace of the test's own."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    code = ("from pathlib import Path\nfrom coi_sentinel.sessions import acl\n"
            "try:\n    acl.grant_tree(Path('/mnt/ws'), 1001000)\n"
            "except Exception as e:\n    print(type(e).__name__); print(e); print(e.hint)\n")
    res = subprocess.run(["unshare", "-rm", "sh", "-c",
                          f"mount -t ramfs coi-test /mnt && mkdir /mnt/ws && exec {sys.executable} -c \"$0\"",
                          code], capture_output=True, text=True, timeout=30)
    if res.returncode != 0 and "mount" in res.stderr:
        pytest.skip(f"cannot mount a ramfs in a user namespace here: {res.stderr.strip()}")
    assert res.stdout.splitlines() == [
        "WorkspaceError",
        "workspace /mnt/ws: is owned by root and its file system has no POSIX ACLs to let the "
        "agent's unprivileged uid write",
        "chown -R 1001000:1001000 /mnt/ws, or run in a folder of your own user"], res.stderr


def test_a_root_owned_workspace_is_never_mapped_onto_root(tmp_path):
    import dataclasses

    from coi_sentinel.sessions.config import Config
    from coi_sentinel.sessions.session import id_mapping

    if tmp_path.stat().st_uid != 0:
        pytest.skip("needs a folder owned by root (run as root)")
    cfg = Config()
    assert id_mapping(tmp_path, cfg) == (False, None)      # auto: the default map + an ACL
    with pytest.raises(WorkspaceError) as info:
        id_mapping(tmp_path, dataclasses.replace(cfg, idmap="raw"))
    assert "would make the agent write as host root" in str(info.value)
    assert 'set idmap = "auto"' in info.value.hint and "chown -R " in info.value.hint
