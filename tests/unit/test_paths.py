"""Paths resolved in user space: cwd followed through chdir events, dirfds through /proc."""

from __future__ import annotations

import os

import pytest

from coi_sentinel.events import model
from coi_sentinel.events.proctable import ProcessTable
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.probes.paths import PathResolver

pytestmark = pytest.mark.unit

H = dict(ts_ns=1, tid=0, ppid=0, uid=0, gid=0, comm="x", cgroup_id=1, scope_id=1, container="c")


def hdr(pid: int, **kw) -> dict:
    return {**H, "pid": pid, "tid": pid, **kw}


def feed(res: PathResolver, pipe: Pipeline, ev):
    ev = res.resolve(ev)
    pipe.feed(ev)
    return ev


def test_relative_paths_follow_chdir_and_fork(tmp_path):
    pipe = Pipeline(ProcessTable())
    res = PathResolver(pipe.table, proc_root=str(tmp_path / "no-proc"))
    pid = 4000001
    feed(res, pipe, model.ChdirEvent(**hdr(pid), path="/w/repo", fd=-100, errno=0))
    ch = feed(res, pipe, model.ChdirEvent(**hdr(pid), path=".git/../.git", fd=-100, errno=0))
    assert ch.path == "/w/repo/.git"
    op = feed(res, pipe, model.FileOpenEvent(**hdr(pid), path="hooks/pre-commit", flags=577, mode=0o644,
                                             fd=3, errno=0, kind="write", dirfd=-100))
    assert op.path == "/w/repo/.git/hooks/pre-commit"
    summary = feed(res, pipe, model.FileWriteEvent(**hdr(pid), path="hooks/pre-commit", kind="write",
                                                   opens=0, writes=1, bytes=9, failed=False, first_ts_ns=1))
    assert summary.path == "/w/repo/.git/hooks/pre-commit"
    feed(res, pipe, model.ForkEvent(**hdr(pid), child_pid=pid + 1, clone_flags=0))
    ln = feed(res, pipe, model.LinkEvent(**hdr(pid + 1, ppid=pid), target="../notes", path="hooks/x",
                                         symlink=True, flags=0, errno=0))
    assert (ln.target, ln.path) == ("../notes", "/w/repo/.git/hooks/x")   # a symlink's text stays
    rn = feed(res, pipe, model.RenameEvent(**hdr(pid + 1), oldpath="/w/repo/staged", newpath="hooks",
                                           flags=0, errno=0))
    assert rn.newpath == "/w/repo/.git/hooks"
    failed = feed(res, pipe, model.ChdirEvent(**hdr(pid), path="/nowhere", fd=-100, errno=2))
    assert failed.path == "/nowhere" and pipe.table.get(pid).cwd == "/w/repo/.git"


def test_dirfd_and_unknown_cwd_come_from_proc(tmp_path):
    pipe = Pipeline(ProcessTable())
    res = PathResolver(pipe.table)
    me = os.getpid()
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        op = res.resolve(model.FileOpenEvent(**hdr(me), path="sub/f", flags=577, mode=0o644, fd=4,
                                             errno=0, kind="write", dirfd=d))
        assert op.path == str(tmp_path / "sub" / "f")
        rel = res.resolve(model.UnlinkEvent(**hdr(me), path="x", dirfd=-100, flags=0, errno=0))
        assert rel.path == os.path.join(os.getcwd(), "x")
        gone = res.resolve(model.FileOpenEvent(**hdr(me), path="y", flags=577, mode=0, fd=5, errno=0,
                                               kind="write", dirfd=9999))
        assert gone.path == "y"       # the fd is not open: left as written
    finally:
        os.close(d)
    absolute = model.FileOpenEvent(**hdr(me), path="/a/b", flags=0, mode=0, fd=3, errno=0, kind="write",
                                   dirfd=-100)
    assert res.resolve(absolute) is absolute


def test_a_program_run_by_a_relative_name_gets_its_path(tmp_path):
    """cd /tmp && ./payload: the kernel's record names ./payload; proc.exe must not."""
    pipe = Pipeline(ProcessTable())
    res = PathResolver(pipe.table, proc_root=str(tmp_path / "no-proc"))
    pid = 4000101
    feed(res, pipe, model.ChdirEvent(**hdr(pid), path="/tmp", fd=-100, errno=0))
    ex = dict(argv=("payload",), argc=1, errno=0, fd=-100, flags=0)
    rel = feed(res, pipe, model.ExecEvent(**hdr(pid), filename="./payload", **ex))
    assert rel.filename == "/tmp/payload" and pipe.table.get(pid).exe == "/tmp/payload"
    absolute = model.ExecEvent(**hdr(pid), filename="/bin/true", **ex)
    assert res.resolve(absolute) is absolute
