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


def test_a_forked_child_has_each_field_of_its_parent_that_it_inherits():
    """The child is made with positional fields (the fork's fast path): each lands on its own
    name, and the fd dicts are copies."""
    from dataclasses import fields

    t = ProcessTable()
    t.apply(model.ExecEvent(*h(10, 1, "bash"), "/bin/bash", ("bash", "-i"), 2, 0, -100, 0))
    t.apply(model.ConnectEvent(*h(10, 1, "bash"), 3, "inet", "10.0.0.9", 4444, 0))
    t.apply(model.DupEvent(*h(10, 1, "bash"), 3, 0, 0, False, "", "", 0))
    t.apply(model.ChdirEvent(*h(10, 1, "bash"), "/srv", -100, 0))
    parent = t.get(10)
    parent.chans[5] = ("pipe", 77, "read")
    parent.past_sockets = (("inet", "10.0.0.8", 80),)
    t.apply(model.ForkEvent(*h(10, 1, "bash", ts=9), 11, 0))
    child = t.get(11)
    want = {"pid": 11, "ppid": 10, "comm": "bash", "exe": "/bin/bash", "argv": ("bash", "-i"), "uid": 0,
            "start_ns": 9, "scope_id": 5, "container": "c1", "exited": False, "exit_code": None,
            "exit_ns": 0, "stdio_sockets": {0: ("inet", "10.0.0.9", 4444)},
            "sockets": {3: ("inet", "10.0.0.9", 4444), 0: ("inet", "10.0.0.9", 4444)}, "cwd": "/srv",
            "past_sockets": (("inet", "10.0.0.8", 80),), "chans": {5: ("pipe", 77, "read")}}
    assert {f.name: getattr(child, f.name) for f in fields(child)} == want
    for name in ("stdio_sockets", "sockets", "chans"):
        assert getattr(child, name) is not getattr(parent, name)


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


def test_a_reused_pid_is_a_new_process_but_records_of_the_dead_one_keep_its_identity():
    """pid 30 ran /bin/true and exited; later the pid comes back as another program (here the
    container runtime's setup, comm incusd, never seen forking). Its records must not carry
    the dead process's name: a rule's exception by name (incusd) would miss. Records the dead
    process made before its exit (bulk ring, read after the exit's) and kernel summaries sent
    at the exit keep its identity."""
    t = ProcessTable()
    t.apply(model.ForkEvent(*h(29, 1, "sh", ts=5), 30, 0))
    t.apply(model.ExecEvent(*h(30, 29, "true", ts=10), "/bin/true", ("/bin/true",), 1, 0, -100, 0))
    t.apply(model.ExitEvent(*h(30, 29, "true", ts=20), 0, 0))
    late = t.apply(model.FileOpenEvent(*h(30, 29, "true", ts=15), "/tmp/x", 0o101, 0o600, 3, 0,
                                       "write", -100))
    assert late.name == "true" and late.exited
    summary = t.apply(model.FileWriteEvent(*h(30, 29, "true", ts=25), "/tmp/x", "write", 1, 1, 4,
                                           False, 15))
    assert summary.name == "true"
    new = t.apply(model.PrivEvent(*h(30, 0, "incusd", ts=900), "unshare", 0x40000000, 0, "", 0))
    assert new.name == "incusd" and not new.exited and new.cmdline == "incusd"
    assert [a.pid for a in t.ancestors(30)] == [] and t.get(30) is new
    assert t.live(5) == 2                   # sh (seen forking) and the new process on pid 30
    # the new process stays when many others exit after it (the old exit's place was dropped)
    for pid in range(1000, 1000 + EXITED_KEEP + 10):
        t.apply(model.ExitEvent(*h(pid, ts=1000), 0, 0))
    assert t.get(30) is new


def test_a_pid_seen_in_another_scope_is_another_process():
    """A session's processes can die unseen after its scope went (killed session): their
    entries stay alive in the table. When the pid comes back in another container's scope, it
    is a new process, not the old one (no process moves between containers)."""
    t = ProcessTable()
    t.apply(model.ExecEvent(*h(40, 1, "sleep", ts=10), "/bin/sleep", ("sleep", "1"), 1, 0, -100, 0))
    other = (900, 40, 40, 0, 0, 0, "incusd", 7, 7, "c2")       # scope 7, not 5
    new = t.apply(model.PrivEvent(*other, "setns", 0, 0, "", 0))
    assert new.name == "incusd" and new.container == "c2" and t.get(40) is new
    assert t.live(5) == 0 and t.live(7) == 1


def test_a_process_seeded_from_proc_keeps_its_identity_in_a_scope():
    t = ProcessTable()
    assert t.seed_from_proc(pids={os.getpid()}) == 1
    me = t.get(os.getpid())
    hdr = (5, os.getpid(), os.getpid(), os.getppid(), 0, 0, "python", 5, 5, "c1")
    assert t.apply(model.PrivEvent(*hdr, "unshare", 0, 0, "", 0)) is me and me.argv
