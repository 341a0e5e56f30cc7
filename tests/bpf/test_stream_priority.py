"""The reader takes the high-priority ring first and the bulk ring a budget at a time: under a
flood of bulk records no exec waits for a whole ring of file records, and none is lost."""

from __future__ import annotations

import textwrap

import pytest

from coi_sentinel.events import model
from coi_sentinel.probes.stream import BULK_BUDGET

pytestmark = pytest.mark.bpf

N_FILES = 3001      # new files: write opens the kernel cannot aggregate (bulk ring)
N_EXEC = 23


def test_execs_all_arrive_beside_more_bulk_records_than_a_budget(watched, py, tmp_path):
    code = textwrap.dedent(f"""
        import os, subprocess
        d = {str(tmp_path)!r}
        for i in range({N_FILES}):
            with open(os.path.join(d, 'f%d' % i), 'w') as f:
                f.write('x')
            if i % {N_FILES // N_EXEC + 1} == 0:
                subprocess.run(['/bin/true'])
    """)
    behind = watched.stream.behind
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    assert N_FILES > 2 * BULK_BUDGET
    execs = [e for e in run.of(model.ExecEvent) if e.filename.endswith("/true")]
    assert len(execs) == N_EXEC
    opens = {e.path for e in run.of(model.FileOpenEvent) if e.path.startswith(str(tmp_path))}
    assert len(opens) == N_FILES
    assert run.lost == 0                # nothing of this scope lost in the kernel
    # the workload ran to its end before the reader looked: the bulk ring took several polls
    assert watched.stream.behind > behind


N_FLOOD = 60_001    # new files, each an open and an unlink record: several bulk rings' worth


def test_a_flood_that_overflows_the_bulk_ring_is_counted_against_its_own_scope(watched, py, tmp_path):
    """Nobody reads while the workload runs: its bulk records overflow the ring. The losses are
    counted by event type and against the flooding scope; the next scope starts with none (a
    session answers its own losses, not another's), and the flood's execs all arrived."""
    code = textwrap.dedent(f"""
        import os, subprocess
        d = {str(tmp_path)!r}
        for i in range({N_FLOOD}):
            p = os.path.join(d, 'f%d' % i)
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))
            os.unlink(p)
            if i % 20000 == 0:
                subprocess.run(['/bin/true'])
    """)
    before = sum(watched.probes.drop_counts().values())
    flood = watched.run([py, "-c", code])
    assert flood.returncode == 0, flood.stderr
    lost = sum(watched.probes.drop_counts().values()) - before
    assert flood.lost > 0 and flood.lost == lost
    assert len([e for e in flood.of(model.ExecEvent) if e.filename.endswith("/true")]) == 4
    quiet = watched.run(["/bin/true"])
    assert quiet.lost == 0 and quiet.of(model.ExecEvent)


N_SPILL = 40        # exec records: ~1.4 KB each, a one-page high-priority ring holds two


def test_security_records_the_high_priority_ring_refuses_go_through_the_bulk_ring(one_page_hi_ring):
    """Nobody reads while the workload runs: the one-page ring refuses the third exec record
    and the ones after it. None is lost: the bulk ring took them, counted as `hi_via_bulk`, and
    the reader, ordering each batch by time, hands them on in the order the kernel saw them."""
    w = one_page_hi_ring
    before = w.probes.ring_retry_counts().get("hi_via_bulk", 0)
    run = w.run(["/bin/sh", "-c", "for i in $(seq %d); do /bin/echo $i; done" % N_SPILL])
    assert run.returncode == 0, run.stderr
    echoes = [e for e in run.of(model.ExecEvent) if e.filename == "/bin/echo"]
    assert [e.argv[1] for e in echoes] == [str(i) for i in range(1, N_SPILL + 1)]
    assert run.lost == 0
    assert w.probes.ring_retry_counts().get("hi_via_bulk", 0) - before >= N_SPILL - 2
