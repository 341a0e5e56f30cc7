"""Paths as the kernel resolves them: relative and ``*at()`` paths made absolute in user space.

The probes send paths as the caller wrote them (reading the kernel's resolved path would mean
walking its structures). This module resolves them before the rules see them:

- a relative path with ``AT_FDCWD`` against the process's working directory, which is
  followed through ``chdir``/``fchdir`` events and inherited at fork; a process first seen
  without a known cwd has it read from ``/proc/<pid>/cwd``;
- a path relative to a dirfd: the kernel joins it to the directory's path when that directory
  was opened in scope with O_DIRECTORY or O_PATH (bpf/file.bpf.c, dir_fds); otherwise it is
  resolved here against ``/proc/<pid>/fd/<n>`` when the event is handled (a process that
  closed the fd or exited by then keeps the path as written: documented in docs/events.md);
  rename and link paths are resolved against the cwd only (their dirfds are not sent);
- a file summary (``file_write``) gets the path its ``file_open`` was resolved to.
- an exec of a relative program name (``./x``) against the cwd (``execveat`` with a dirfd is
  joined in the kernel when the directory was opened in scope, bpf/exec.bpf.c).

Absolute paths are only normalised (``a/../b``); symlinks are not followed (the kernel's
view of a symlinked directory would need its structures too).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections import OrderedDict
from typing import Any, Callable

from ..events import model
from ..events.proctable import ProcessTable

AT_FDCWD = -100
#: resolved paths of (pid, path as written) remembered for summaries
_KEEP = 65536


def _readlink(path: str) -> str | None:
    try:
        target = os.readlink(path)
    except OSError:
        return None
    if not target.startswith("/") or target.endswith(" (deleted)"):
        return None      # "socket:[..]", "anon_inode:..." or a deleted directory
    return target


def _join(base: str, rel: str) -> str:
    return posixpath.normpath(posixpath.join(base, rel))


class PathResolver:
    """Resolves the paths of events against the process table's cwds (see the module doc)."""

    def __init__(self, table: ProcessTable, proc_root: str = "/proc") -> None:
        self.table = table
        self.proc_root = proc_root
        self._opened: OrderedDict[tuple[int, str], str] = OrderedDict()
        #: event class -> how its paths are resolved (other classes have none)
        self._by_type: dict[type, Callable[[Any], model.Event]] = {
            model.FileOpenEvent: self._file_open, model.FileWriteEvent: self._file_write,
            model.ChdirEvent: self._chdir, model.ForkEvent: self._fork,
            model.RenameEvent: self._other, model.LinkEvent: self._other,
            model.UnlinkEvent: self._other, model.ChmodEvent: self._other,
            model.UtimeEvent: self._other, model.ExecEvent: self._exec,
            model.PrivEvent: self._priv,
        }

    def cwd(self, pid: int) -> str | None:
        p = self.table.get(pid)
        if p is not None and p.cwd:
            return p.cwd
        cwd = _readlink(f"{self.proc_root}/{pid}/cwd")
        if cwd is None:
            # gone already: the nearest ancestor's known cwd (it had no chdir of its own)
            for a in self.table.ancestors(pid):
                if a.cwd:
                    return a.cwd
            return None
        if p is not None:
            p.cwd = cwd
        return cwd

    def path(self, pid: int, dirfd: int, path: str) -> str:
        """``path`` as the kernel resolved it for ``pid`` (``dirfd`` AT_FDCWD or an fd)."""
        if not path:
            return path
        if path.startswith("/"):
            return posixpath.normpath(path) if ("/." in path or "//" in path) else path
        if dirfd == AT_FDCWD:
            base = self.cwd(pid)
        else:
            base = _readlink(f"{self.proc_root}/{pid}/fd/{dirfd}")
        return path if base is None else _join(base, path)

    def resolve(self, ev: model.Event) -> model.Event:
        """The event with its paths resolved (the same object when nothing changes)."""
        fn = self._by_type.get(type(ev))
        return ev if fn is None else fn(ev)

    def _file_open(self, ev: model.FileOpenEvent) -> model.Event:
        if ev.kind == "truncate" and ev.dirfd >= 0:
            return self._file_write(ev)     # ftruncate: the path as its open wrote it
        new = self.path(ev.pid, ev.dirfd, ev.path)
        key = (ev.pid, ev.path)
        opened = self._opened
        if key in opened:
            opened.move_to_end(key)
        opened[key] = new
        if len(opened) > _KEEP:
            opened.popitem(last=False)
        return ev if new == ev.path else dataclasses.replace(ev, path=new)

    def _file_write(self, ev: model.FileWriteEvent | model.FileOpenEvent) -> model.Event:
        new = self._opened.get((ev.pid, ev.path)) or self.path(ev.pid, AT_FDCWD, ev.path)
        return ev if new == ev.path else dataclasses.replace(ev, path=new)

    def _exec(self, ev: model.ExecEvent) -> model.Event:
        # a program run by a relative name (cd /tmp && ./x) keeps it in the kernel's record;
        # absolute names, the common case, cost one test
        name = ev.filename
        if not name or name[0] == "/":
            return ev
        new = self.path(ev.pid, AT_FDCWD, name)
        return ev if new == name else dataclasses.replace(ev, filename=new)

    def _fork(self, ev: model.ForkEvent) -> model.Event:
        self.cwd(ev.pid)      # known before the table copies it to the child
        return ev

    def _chdir(self, ev: model.ChdirEvent) -> model.Event:
        if ev.errno:
            return ev
        if ev.fd == AT_FDCWD and ev.path:
            new = self.path(ev.pid, AT_FDCWD, ev.path)
        else:   # fchdir: the fd's directory, else where the process is now
            new = (_readlink(f"{self.proc_root}/{ev.pid}/fd/{ev.fd}")
                   or _readlink(f"{self.proc_root}/{ev.pid}/cwd") or ev.path)
        p = self.table.get(ev.pid)
        if p is not None and new.startswith("/"):
            p.cwd = new
        return ev if new == ev.path else dataclasses.replace(ev, path=new)

    def _priv(self, ev: model.PrivEvent) -> model.Event:
        # chown's path (fchownat's relative to a dirfd the kernel did not know: the cwd's)
        if ev.op != "chown" or not ev.detail:
            return ev
        new = self.path(ev.pid, AT_FDCWD, ev.detail)
        return ev if new == ev.detail else dataclasses.replace(ev, detail=new)

    def _other(self, ev) -> model.Event:
        # rename/link hooks do not send their dirfds: *at() variants resolve against the cwd
        if isinstance(ev, model.RenameEvent):
            old = self.path(ev.pid, AT_FDCWD, ev.oldpath)
            new = self.path(ev.pid, AT_FDCWD, ev.newpath)
            if (old, new) == (ev.oldpath, ev.newpath):
                return ev
            return dataclasses.replace(ev, oldpath=old, newpath=new)
        if isinstance(ev, model.LinkEvent):
            new = self.path(ev.pid, AT_FDCWD, ev.path)
            target = ev.target if ev.symlink else self.path(ev.pid, AT_FDCWD, ev.target)
            if (target, new) == (ev.target, ev.path):
                return ev
            return dataclasses.replace(ev, target=target, path=new)
        dirfd = ev.dirfd if isinstance(ev, model.UnlinkEvent) else ev.fd
        if isinstance(ev, (model.ChmodEvent, model.UtimeEvent)) and not ev.path:
            return ev
        new = self.path(ev.pid, dirfd, ev.path)
        return ev if new == ev.path else dataclasses.replace(ev, path=new)
