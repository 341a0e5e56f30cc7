"""Saving a session's state directory on the host, and restoring it into a new container.

The container is not trusted, so a save reads its files from the host side of the instance's
root file system with the discipline of a hostile tree: every path component is opened with
``O_NOFOLLOW`` relative to its parent's descriptor (an absolute symlink planted by the container
would otherwise point into the host), only regular files and directories are copied (symlinks,
FIFOs, sockets and device nodes are skipped and counted), a file is opened non-blocking and
checked with ``fstat`` to be the regular file that was listed, and counts, sizes and depth are
bounded. The copy goes into a fresh directory of our own, created with ``O_EXCL``. (The Incus
file API is not used for this: a GET on a FIFO planted by the container blocks.)

Restoring writes through the Incus file API into the new container, as the agent.

Credentials never go into a saved state: the profile's credential files that lie inside its
state directory (claude's ``.claude/.credentials.json`` inside ``.claude``) are left out of a
save, skipped by a restore (and removed from a state saved before this rule), and the session
restores before it stages: the credential just staged from the host is the one the agent gets,
and the host keeps one copy of it, the user's own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..errors import StateError
from ..host import paths

log = logging.getLogger(__name__)

MAX_FILES = 20_000
MAX_BYTES = 512 << 20
MAX_FILE_BYTES = 256 << 20
MAX_DEPTH = 32
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(slots=True)
class SaveReport:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)   # kind -> count

    def skip(self, kind: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "char-device"), (stat.S_ISBLK, "block-device")):
        if test(mode):
            return name
    return "other"


def _open_beneath(root_fd: int, rel: PurePosixPath) -> int:
    """Open directory ``rel`` under ``root_fd`` with no symlink followed at any level."""
    fd = os.dup(root_fd)
    try:
        for part in rel.parts:
            if part in ("", "/", ".", ".."):
                raise StateError(f"bad path component {part!r} in {rel}")
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError:
        os.close(fd)
        raise
    return fd


def _copy_file(src_dir: int, name: str, listed: os.stat_result, dst_dir: int,
               report: SaveReport) -> None:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=src_dir)
    except OSError as err:            # swapped for a symlink (ELOOP) or gone since listing
        report.skip(f"unreadable ({err.strerror})")
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino):
            report.skip("changed while saving")
            return
        if st.st_size > MAX_FILE_BYTES or report.bytes + st.st_size > MAX_BYTES:
            report.skip("too large")
            return
        os.set_blocking(fd, True)
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600 | (st.st_mode & 0o100), dir_fd=dst_dir)
        try:
            left = MAX_FILE_BYTES
            while left > 0:
                chunk = os.read(fd, min(1 << 20, left))
                if not chunk:
                    break
                os.write(out, chunk)
                left -= len(chunk)
                report.bytes += len(chunk)
        finally:
            os.close(out)
        report.files += 1
    finally:
        os.close(fd)


def secrets_within(state_dir: str, credentials: Iterable[str]) -> frozenset[PurePosixPath]:
    """The credential paths (relative to the home) that lie inside ``state_dir``, relative to
    it."""
    base = PurePosixPath(state_dir)
    out = set()
    for cred in credentials:
        path = PurePosixPath(cred)
        if path != base and base in path.parents:
            out.add(path.relative_to(base))
    return frozenset(out)


def _copy_tree(src: int, dst: int, depth: int, report: SaveReport,
               rel: PurePosixPath = PurePosixPath(), exclude: frozenset[PurePosixPath] = frozenset()) -> None:
    if depth > MAX_DEPTH:
        report.skip("too deep")
        return
    with os.scandir(src) as it:
        names = [e.name for e in it]
    for name in sorted(names):
        if report.files + report.dirs >= MAX_FILES:
            report.skip("too many files")
            return
        if rel / name in exclude:
            report.skip("credential")
            continue
        try:
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
        except OSError:
            report.skip("vanished")
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=src)
            except OSError:
                report.skip("changed while saving")
                continue
            try:
                os.mkdir(name, 0o700, dir_fd=dst)
                out = os.open(name, _DIR_FLAGS, dir_fd=dst)
                try:
                    report.dirs += 1
                    _copy_tree(sub, out, depth + 1, report, rel / name, exclude)
                finally:
                    os.close(out)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, name, st, dst, report)
        else:
            report.skip(_kind(st.st_mode))


def copy_out(rootfs: Path, container_dir: PurePosixPath, dest: Path,
             exclude: frozenset[PurePosixPath] = frozenset()) -> SaveReport:
    """Copy ``container_dir`` (absolute, in the container) from ``rootfs`` into new ``dest``,
    without the paths (relative to it) in ``exclude``."""
    report = SaveReport()
    try:
        root_fd = os.open(rootfs, _DIR_FLAGS)
    except OSError as err:
        raise StateError(f"cannot open the container's file system at {rootfs}: {err.strerror}") from err
    try:
        try:
            src = _open_beneath(root_fd, container_dir.relative_to("/"))
        except FileNotFoundError:
            raise StateError(f"{container_dir} does not exist in the container") from None
        except OSError as err:
            raise StateError(f"{container_dir} in the container is not a plain directory "
                             f"({err.strerror}); not saved") from err
        try:
            dest.mkdir(mode=0o700)
            dst = os.open(dest, _DIR_FLAGS)
            try:
                _copy_tree(src, dst, 0, report, PurePosixPath(), exclude)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    finally:
        os.close(root_fd)
    return report


@dataclass(frozen=True, slots=True)
class SavedSession:
    id: str
    path: Path
    workspace: str
    tool: str
    container: str
    state_dir: str
    saved_at: float

    @property
    def files(self) -> Path:
        return self.path / "state"


def save(rootfs: Path, home: str, state_dir: str, *, container: str, workspace: str,
         tool: str, credentials: Iterable[str] = ()) -> tuple[SavedSession, SaveReport]:
    """Save ``<home>/<state_dir>`` of a container as a new saved session, without the
    ``credentials`` (paths relative to the home) that lie inside it."""
    base = paths.private_dir(paths.saved_sessions_dir())
    sid = f"{container}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    tmp = base / f".{sid}.partial"
    tmp.mkdir(mode=0o700)
    try:
        report = copy_out(rootfs, PurePosixPath(home) / state_dir, tmp / "state",
                          secrets_within(state_dir, credentials))
        meta = {"id": sid, "workspace": workspace, "tool": tool, "container": container,
                "state_dir": state_dir, "saved_at": time.time(), "files": report.files,
                "bytes": report.bytes, "skipped": report.skipped}
        fd = os.open(tmp / "meta.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=2)
        os.rename(tmp, base / sid)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if set(report.skipped) - {"credential"}:
        log.warning("saved %s without %s", sid,
                    ", ".join(f"{n} {k}" for k, n in sorted(report.skipped.items())))
    return _read_meta(base / sid), report


def _read_meta(path: Path) -> SavedSession:
    try:
        m = json.loads((path / "meta.json").read_text())
        return SavedSession(m["id"], path, m["workspace"], m["tool"], m["container"],
                            m["state_dir"], float(m["saved_at"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StateError(f"saved session {path} is unreadable: {err}") from err


def saved_sessions() -> list[SavedSession]:
    base = paths.saved_sessions_dir()
    if not base.is_dir():
        return []
    out = []
    for p in base.iterdir():
        if p.name.startswith(".") or not (p / "meta.json").is_file():
            continue
        try:
            out.append(_read_meta(p))
        except StateError as err:
            log.warning("%s", err)
    return sorted(out, key=lambda s: s.saved_at)


def find(session_id: str | None, workspace: str, tool: str) -> SavedSession:
    """A saved session by id, or (``None``) the latest one of this workspace and tool."""
    all_saved = saved_sessions()
    if session_id:
        for s in all_saved:
            if s.id == session_id:
                return s
        raise StateError(f"no saved session {session_id!r}",
                         hint=f"saved sessions are in {paths.saved_sessions_dir()}")
    mine = [s for s in all_saved if s.workspace == workspace and s.tool == tool]
    if not mine:
        raise StateError(f"no saved {tool} session for {workspace}")
    return mine[-1]


def restore(saved: SavedSession, files, home: str, uid: int, gid: int,
            credentials: Iterable[str] = ()) -> int:
    """Write a saved state directory into a container (``files``: .incus.InstanceFiles),
    without the ``credentials`` inside it: a state saved before they were left out has its
    copies removed here (the host keeps one copy of a secret: the user's own)."""
    root = saved.files
    secrets = secrets_within(saved.state_dir, credentials)
    dest_root = PurePosixPath(home) / saved.state_dir
    parts = PurePosixPath(saved.state_dir).parts
    for i in range(1, len(parts) + 1):
        files.mkdir(str(PurePosixPath(home, *parts[:i])), 0o700, uid, gid)
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        for d in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                continue
            files.mkdir(str(dest_root / rel / d), 0o700, uid, gid)
        for name in sorted(filenames):
            src = os.path.join(dirpath, name)
            if PurePosixPath(*rel.parts, name) in secrets:
                try:
                    os.unlink(src)
                    log.warning("removed a saved copy of credential %s from %s", name, saved.id)
                except OSError as err:
                    log.warning("cannot remove the saved credential %s: %s", src, err.strerror)
                continue
            st = os.lstat(src)
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(src, "rb") as f:
                files.write(str(dest_root / rel / name), f.read(), 0o600 | (st.st_mode & 0o100), uid, gid)
            count += 1
    return count
