"""cgroup2 helpers: ids, levels, container names, and cgroups made for a workload.

A cgroup's id (what ``bpf_get_current_cgroup_id`` returns) is the inode number of its
directory on the cgroup2 mount. Incus/LXC containers live at ``<mount>/lxc.payload.<name>``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

from ..errors import ScopeError

log = logging.getLogger(__name__)

LXC_PREFIX = "lxc.payload."


def cgroup2_mount(mounts: str = "/proc/self/mounts") -> Path:
    """The cgroup2 mount point (``/sys/fs/cgroup`` or, on hybrid hosts, ``.../unified``)."""
    try:
        with open(mounts) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return Path(parts[1])
    except OSError as err:
        raise ScopeError(f"cannot read {mounts}: {err}") from err
    raise ScopeError("no cgroup2 file system is mounted",
                     hint="mount -t cgroup2 none /sys/fs/cgroup/unified")


def cgroup_id(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_ino
    except OSError as err:
        raise ScopeError(f"cgroup {path}: {err.strerror}") from err


def cgroup_level(path: str | os.PathLike[str], mount: Path | None = None) -> int:
    """Depth below the cgroup2 root: ``<mount>/a`` is level 1."""
    mount = mount or cgroup2_mount()
    rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(mount))
    return len(rel.parts)


def cgroup_of_pid(pid: int, mount: Path | None = None) -> Path:
    mount = mount or cgroup2_mount()
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return mount / line[3:].strip().lstrip("/")
    except OSError as err:
        raise ScopeError(f"cannot read the cgroup of pid {pid}: {err.strerror}") from err
    raise ScopeError(f"pid {pid} has no cgroup2 entry")


def container_cgroup_path(name: str, mount: Path | None = None) -> Path:
    """Where the cgroup2 directory of an Incus/LXC container is while it runs (LXC makes it
    early in the container's start, before its init runs)."""
    return (mount or cgroup2_mount()) / f"{LXC_PREFIX}{name}"


def container_cgroup(name: str, mount: Path | None = None) -> Path:
    """The cgroup2 directory of an Incus/LXC container (it must be running)."""
    path = container_cgroup_path(name, mount)
    if not path.is_dir():
        raise ScopeError(f"container {name!r} has no cgroup at {path} (is it running?)")
    return path


def remove_left_cgroup(name: str, mount: Path | None = None, wait: float = 2.0) -> bool:
    """Remove the cgroup a deleted container left behind: LXC does not remove one that was
    frozen (a session paused, then killed), and it stays, frozen, for ever - with, at times,
    a process Incus was starting in it (an exec's helper, outside the container's own
    processes, which the stop killed). What is left in it is killed (``cgroup.kill``), the
    cgroup thawed and, once empty (``wait`` seconds at most), removed. False when there was
    none or it could not be removed (logged)."""
    path = container_cgroup_path(name, mount)
    if not path.is_dir():
        return False
    dirs = sorted((d for d in path.rglob("*") if d.is_dir()), key=lambda d: len(d.parts),
                  reverse=True) + [path]
    try:
        if (path / "cgroup.kill").exists():
            (path / "cgroup.kill").write_text("1")
        for d in dirs:
            if (d / "cgroup.freeze").exists():
                (d / "cgroup.freeze").write_text("0")
        deadline = time.monotonic() + wait
        while any((d / "cgroup.procs").read_text().strip() for d in dirs):
            if time.monotonic() > deadline:
                log.warning("%s: left behind by container %s, still has processes", path, name)
                return False
            time.sleep(0.02)
        for d in dirs:
            d.rmdir()
    except OSError as err:
        log.warning("%s: left behind by container %s, not removed: %s", path, name, err)
        return False
    log.info("%s: removed (left behind by container %s)", path, name)
    return True


class WorkloadCgroup:
    """A cgroup made for one workload (record, tests, benchmarks); removed on close.

    Processes are moved in with :meth:`add_pid`; on close any left are killed and the directory
    removed, so nothing stays behind.
    """

    def __init__(self, prefix: str = "coi-sentinel", mount: Path | None = None) -> None:
        self.mount = mount or cgroup2_mount()
        self.path = self.mount / f"{prefix}-{uuid.uuid4().hex[:12]}"
        try:
            self.path.mkdir()
        except OSError as err:
            raise ScopeError(f"cannot create cgroup {self.path}: {err.strerror}",
                             hint="run as root") from err
        self.id = cgroup_id(self.path)
        self.level = cgroup_level(self.path, self.mount)

    def add_pid(self, pid: int) -> None:
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as err:
            raise ScopeError(f"cannot move pid {pid} into {self.path}: {err.strerror}") from err

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        if not self.path.exists():
            return
        kill = self.path / "cgroup.kill"
        deadline = time.monotonic() + 5
        while self.pids() and time.monotonic() < deadline:
            try:
                kill.write_text("1\n")
            except OSError:
                for pid in self.pids():
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
            time.sleep(0.01)
        try:
            self.path.rmdir()
        except OSError as err:
            log.warning("could not remove cgroup %s: %s", self.path, err)

    def __enter__(self) -> "WorkloadCgroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ContainerNames:
    """scope id -> container name ("host" for the root or unknown), cached, rescanned lazily."""

    def __init__(self, mount: Path | None = None, rescan_interval: float = 1.0) -> None:
        try:
            self.mount = mount or cgroup2_mount()
        except ScopeError:
            self.mount = None
        self._names: dict[int, str] = {0: "host"}
        self._last_scan = 0.0
        self.rescan_interval = rescan_interval
        if self.mount is not None:
            self._names[_safe_id(self.mount)] = "host"
            self._scan()

    def add(self, scope_id: int, name: str) -> None:
        self._names[scope_id] = name

    def _scan(self) -> None:
        self._last_scan = time.monotonic()
        if self.mount is None:
            return
        try:
            entries = list(os.scandir(self.mount))
        except OSError:
            return
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            try:
                ino = e.inode()
            except OSError:
                continue
            if ino not in self._names:
                self._names[ino] = e.name[len(LXC_PREFIX):] if e.name.startswith(LXC_PREFIX) else f"cgroup:{e.name}"

    def __call__(self, scope_id: int) -> str:
        name = self._names.get(scope_id)
        if name is not None:
            return name
        if time.monotonic() - self._last_scan >= self.rescan_interval:
            self._scan()
            name = self._names.get(scope_id)
            if name is not None:
                return name
        return f"cgroup-id:{scope_id}"


def _safe_id(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1
