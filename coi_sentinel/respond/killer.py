"""Killing: one process tree, or every process of a cgroup."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from ..errors import ResponseError, ScopeError
from ..events.proctable import ProcessTable
from ..host.cgroups import cgroup_of_pid

log = logging.getLogger(__name__)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def process_tree(pid: int, table: ProcessTable | None = None) -> list[int]:
    """pid and its descendants, from /proc and (for ones /proc no longer links) the table."""
    seen: list[int] = []
    todo = [pid]
    known_children: dict[int, list[int]] = {}
    if table is not None:
        for p in table.processes():
            if not p.exited:
                known_children.setdefault(p.ppid, []).append(p.pid)
    while todo and len(seen) < 100_000:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.append(cur)
        todo += _children(cur) + known_children.get(cur, [])
    return seen


def kill_tree(pid: int, table: ProcessTable | None = None, *, allowed_cgroup: Path | None = None,
              wait: float = 1.0) -> list[int]:
    """SIGKILL pid and its descendants. With ``allowed_cgroup`` a process outside that cgroup
    (and below) is never touched. Returns the pids signalled.

    The tree is stopped first (it cannot fork while it is walked), then the descendants are
    killed and waited for (up to ``wait`` seconds) before the root: whoever waits on the root
    (the agent's shell) sees it die only once everything below it is dead, and on return no
    process of the tree runs any more."""
    victims = [p for p in process_tree(pid, table) if _inside(p, allowed_cgroup)]
    _signal(victims, signal.SIGSTOP)
    victims = [p for p in process_tree(pid, table) if _inside(p, allowed_cgroup)]
    below = [p for p in victims if p != pid]
    done = _signal(reversed(below), signal.SIGKILL)
    _wait_dead(done, wait)
    if pid in victims:
        done += _signal([pid], signal.SIGKILL)
        _wait_dead([pid], wait)
    return done


def _signal(pids, sig: signal.Signals) -> list[int]:
    sent: list[int] = []
    for p in pids:
        try:
            os.kill(p, sig)
            sent.append(p)
        except ProcessLookupError:
            pass
        except PermissionError as err:
            raise ResponseError(f"cannot signal pid {p}: {err.strerror}") from err
    return sent


def _dead(pid: int) -> bool:
    """Gone, or a zombie (its memory, and so its command line, already released)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")


def _wait_dead(pids: list[int], wait: float) -> None:
    deadline = time.monotonic() + wait
    left = [p for p in pids if not _dead(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.0005)
        left = [p for p in left if not _dead(p)]
    if left:
        log.warning("killed processes %s still running after %.1f s", left, wait)


def _inside(pid: int, cgroup: Path | None) -> bool:
    if cgroup is None:
        return True
    try:
        path = cgroup_of_pid(pid)
    except ScopeError:
        return False  # gone, or no cgroup2 entry: not ours to touch
    return path == cgroup or cgroup in path.parents


def kill_cgroup(cgroup: str | os.PathLike[str], *, wait: float = 2.0) -> int:
    """Kill every process in the cgroup (cgroup.kill). Returns ns until it was empty."""
    cg = Path(cgroup)
    t0 = time.monotonic_ns()
    try:
        (cg / "cgroup.kill").write_text("1")
    except OSError as err:
        raise ResponseError(f"cannot kill the processes of {cg}: {err.strerror}") from err
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if not (cg / "cgroup.procs").read_text().strip():
                break
        except OSError:
            break  # the cgroup went away with its processes
        time.sleep(0.001)
    return time.monotonic_ns() - t0
