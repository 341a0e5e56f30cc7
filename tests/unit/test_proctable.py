"""The process table built from events alone."""

from __future__ import annotations

import os

import pytest

from coi_sentinel.events import model
from coi_sentinel.events.proctable import EXITED_KEEP, ProcessTable

pytestmark = pytest.mark.unit


def h(pid, ppid=0, comm="sh", ts=1):
    return (ts, pid, pid, ppid, 0, 0, comm, 5, 5, "c1")


def test_fork_exec_ancestry_and_socket_stdio():
    t = ProcessTable()
    t.apply(model.ExecEvent(*h(10, 1, "bash"), "/bin/bash", ("bash",), 1, 0, -100, 0))
    t.apply(model.ConnectEvent(*h(10, 1, "bash"), 3, "inet", "10.0.0.9", 4444, 0))
    t.apply(model.DupEvent(*h(10, 1, "bash"), 3, 0, 0, False, "", "", 0))
    t.apply(model.ForkEvent(*h(10, 1, "bash"), 11, 0))
    p = t.apply(model.ExecEvent(*h(11, 10, "python3"), "/usr/bin/python3", ("python3", "-c", "x"), 3, 0, -100, 0))
    assert p.name == "python3" and p.cmdline == "python3 -c x"
    assert p.stdio_sockets[0] == ("inet", "10.0.0.9", 4444)  # inherited from the parent
    assert [a.pid for a in t.ancestors(11)] == [10]
    assert t.get(10).exe == "/bin/bash"


def test_failed_exec_keeps_identity_and_exit_is_bounded():
    t = ProcessTable()
    t.apply(model.ExecEvent(*h(20), "/bin/sh", ("sh",), 1, 0, -100, 0))
    t.apply(model.ExecEvent(*h(20), "/nope", ("nope",), 1, 2, -100, 0))
    assert t.get(20).exe == "/bin/sh"
    for pid in range(1000, 1000 + EXITED_KEEP + 10):
        t.apply(model.ExitEvent(*h(pid), 0, 0))
    assert t.get(1000) is None and t.get(1000 + EXITED_KEEP + 9).exited


def test_capacity_evicts_oldest():
    t = ProcessTable(max_procs=3)
    for pid in (1, 2, 3, 4):
        t.apply(model.ForkEvent(*h(pid), pid + 100, 0))
    assert len(t) == 3 and t.evicted >= 1


def test_ancestor_loop_is_cut():
    t = ProcessTable()
    t.apply(model.ForkEvent(*h(1, 2), 2, 0))
    t.apply(model.ForkEvent(*h(2, 1), 1, 0))
    assert len(t.ancestors(1)) <= 2


def test_seed_from_proc_sees_this_process():
    t = ProcessTable()
    assert t.seed_from_proc(pids={os.getpid()}) == 1
    me = t.get(os.getpid())
    assert me.ppid == os.getppid() and me.argv
