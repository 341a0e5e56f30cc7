"""The process table's live count per scope (container.live_procs, read by fork_bomb)."""

from __future__ import annotations

import pytest

from coi_sentinel.events import model as m
from coi_sentinel.events.proctable import ProcessTable

pytestmark = pytest.mark.unit


def _hdr(pid: int, scope: int, ts: int) -> dict:
    return dict(ts_ns=ts, pid=pid, tid=pid, ppid=1, uid=0, gid=0, comm="sh", cgroup_id=scope + 1,
                scope_id=scope, container=f"c{scope}")


def fork(parent: int, child: int, scope: int = 7, ts: int = 1) -> m.ForkEvent:
    return m.ForkEvent(**_hdr(parent, scope, ts), child_pid=child, clone_flags=17)


def exit_(pid: int, scope: int = 7, ts: int = 2) -> m.ExitEvent:
    return m.ExitEvent(**_hdr(pid, scope, ts), exit_code=0, signal=0)


def test_forks_add_exits_remove_per_scope() -> None:
    t = ProcessTable()
    for child in range(100, 110):
        t.apply(fork(10, child))
    t.apply(fork(20, 200, scope=8))
    assert t.live(7) == 11 and t.live(8) == 2       # the parents were seen acting: alive too
    for child in range(100, 105):
        t.apply(exit_(child))
    t.apply(exit_(104))                               # a second exit of one pid counts once
    assert t.live(7) == 6 and t.live(8) == 2 and t.live(9) == 0


def test_pid_reuse_and_eviction_keep_the_count_right() -> None:
    t = ProcessTable(max_procs=5)
    t.apply(fork(10, 100))
    t.apply(fork(10, 100))                            # pid reused before its exit was seen
    assert t.live(7) == 2
    for child in range(101, 110):
        t.apply(fork(10, child))
    assert len(t) == 5 and t.live(7) == 5            # evicted entries no longer count
    for child in range(105, 110):
        t.apply(exit_(child))
    assert t.live(7) == 0
