"""Saving a state directory from a hostile container's file system (a local tree here)."""

import os
import stat
from pathlib import PurePosixPath

import pytest

from coi_sentinel.errors import StateError
from coi_sentinel.sessions import state

pytestmark = pytest.mark.unit


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    sd = root / "home/code/.state"
    (sd / "sub").mkdir(parents=True)
    (sd / "file").write_text("v1\n")
    (sd / "sub/deep").write_text("deep\n")
    (sd / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(sd / "run.sh", 0o755)
    return root


def test_copies_files_and_dirs_private(rootfs, tmp_path):
    dest = tmp_path / "out"
    report = state.copy_out(rootfs, PurePosixPath("/home/code/.state"), dest)
    assert (report.files, report.dirs, report.skipped) == (3, 1, {})
    assert (dest / "file").read_text() == "v1\n" and (dest / "sub/deep").read_text() == "deep\n"
    assert stat.S_IMODE((dest / "file").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o700
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700


def test_symlinks_fifos_sockets_are_skipped(rootfs, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST\n")
    sd = rootfs / "home/code/.state"
    (sd / "abs").symlink_to(secret)
    (sd / "rel").symlink_to("../../../../host-secret")
    (sd / "dirlink").symlink_to(tmp_path)
    os.mkfifo(sd / "fifo")
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sd / "sock"))
    try:
        dest = tmp_path / "out"
        report = state.copy_out(rootfs, PurePosixPath("/home/code/.state"), dest)
    finally:
        s.close()
    assert report.skipped == {"symlink": 3, "fifo": 1, "socket": 1}
    assert sorted(p.name for p in dest.iterdir()) == ["file", "run.sh", "sub"]


@pytest.mark.parametrize("link_at", ["home", "home/code", "home/code/.state"])
def test_symlinked_path_component_is_refused(rootfs, tmp_path, link_at):
    target = rootfs / link_at
    moved = target.with_name(target.name + ".real")
    target.rename(moved)
    target.symlink_to(moved)          # inside the tree; an absolute one would leave it
    with pytest.raises(StateError, match="not a plain directory"):
        state.copy_out(rootfs, PurePosixPath("/home/code/.state"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_absolute_symlink_to_host_is_not_followed(tmp_path):
    root = tmp_path / "rootfs"
    (root / "home/code").mkdir(parents=True)
    hostdir = tmp_path / "host-dir"
    hostdir.mkdir()
    (hostdir / "passwd").write_text("HOST\n")
    (root / "home/code/.state").symlink_to(hostdir)
    with pytest.raises(StateError):
        state.copy_out(root, PurePosixPath("/home/code/.state"), tmp_path / "out")


def test_missing_state_dir(rootfs, tmp_path):
    with pytest.raises(StateError, match="does not exist"):
        state.copy_out(rootfs, PurePosixPath("/home/code/.nothing"), tmp_path / "out")


def test_existing_destination_is_never_written_through(rootfs, tmp_path):
    dest = tmp_path / "out"
    dest.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        state.copy_out(rootfs, PurePosixPath("/home/code/.state"), dest)
    assert not (tmp_path / "elsewhere").exists()


def test_limits(rootfs, tmp_path, monkeypatch):
    monkeypatch.setattr(state, "MAX_FILE_BYTES", 4)
    report = state.copy_out(rootfs, PurePosixPath("/home/code/.state"), tmp_path / "out")
    assert report.skipped == {"too large": 2} and report.files == 1


def test_save_find_and_restore(rootfs, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    saved, _ = state.save(rootfs, "/home/code", ".state", container="coi-12345678-1",
                          workspace="/w", tool="t")
    assert state.find(None, "/w", "t") == saved
    assert state.find(saved.id, "/other", "x") == saved
    with pytest.raises(StateError):
        state.find(None, "/w", "other-tool")

    class Files:
        def __init__(self):
            self.ops = []

        def mkdir(self, path, mode, uid, gid):
            self.ops.append(("d", path, mode, uid))

        def write(self, path, data, mode, uid, gid):
            self.ops.append(("f", path, mode, uid, data))

    files = Files()
    assert state.restore(saved, files, "/home/code", 1000, 1000) == 3
    assert ("f", "/home/code/.state/file", 0o600, 1000, b"v1\n") in files.ops
    assert ("f", "/home/code/.state/run.sh", 0o700, 1000, b"#!/bin/sh\n") in files.ops
    assert files.ops[0] == ("d", "/home/code/.state", 0o700, 1000)


def test_credentials_inside_the_state_dir_are_never_saved(rootfs, tmp_path, monkeypatch):
    """Issue 17: a saved state kept a second copy of claude's .credentials.json on the host."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    sd = rootfs / "home/code/.state"
    (sd / ".credentials.json").write_text('{"token": "SECRET"}')
    (sd / "sub/key").write_text("SECRET2")
    creds = [".state/.credentials.json", ".state/sub/key", ".other.json", ".state"]
    assert state.secrets_within(".state", creds) == {PurePosixPath(".credentials.json"),
                                                     PurePosixPath("sub/key")}
    saved, report = state.save(rootfs, "/home/code", ".state", container="coi-12345678-1",
                               workspace="/w", tool="t", credentials=creds)
    kept = sorted(str(p.relative_to(saved.files)) for p in saved.files.rglob("*"))
    assert kept == ["file", "run.sh", "sub", "sub/deep"]
    assert report.skipped == {"credential": 2}
    assert not any(b"SECRET" in p.read_bytes() for p in saved.files.rglob("*") if p.is_file())
