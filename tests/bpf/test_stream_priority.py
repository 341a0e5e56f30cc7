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
    assert watched.drops() == {}
    # the workload ran to its end before the reader looked: the bulk ring took several polls
    assert watched.stream.behind > behind
