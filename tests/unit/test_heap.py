"""The event loop's heap settings (coi_sentinel/heap.py): the collector's, checked in a child
process so that this test process keeps its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit


def _child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_collect_young_less_changes_only_the_young_threshold() -> None:
    out = _child("""
        import gc
        from coi_sentinel import heap
        before = gc.get_threshold()
        heap.collect_young_less()
        after = gc.get_threshold()
        print(after[0] == heap.YOUNG_THRESHOLD, after[1:] == before[1:])
    """)
    assert out == "True True"


def test_settle_freezes_what_lives_and_collects_what_died_frozen() -> None:
    """A cycle frozen by one settle() and dropped afterwards (the daemon's old rules after a
    reload) is collected by the next settle(): frozen objects are never walked otherwise."""
    out = _child("""
        import gc, weakref
        from coi_sentinel import heap

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.peer, b.peer = b, a
            return a

        kept = cycle()
        dropped_before = cycle()
        ref_before = weakref.ref(dropped_before)
        del dropped_before                  # garbage at set-up: settle() collects it
        heap.settle()
        print(ref_before() is None, gc.get_freeze_count() > 0)
        frozen = cycle()
        heap.settle()                       # now frozen
        ref = weakref.ref(frozen)
        del frozen
        gc.collect()
        print(ref() is not None)            # frozen: a collection does not see it
        heap.settle()
        print(ref() is None, kept.peer.peer is kept)
    """)
    assert out.split("\n") == ["True True", "True", "True True"]
