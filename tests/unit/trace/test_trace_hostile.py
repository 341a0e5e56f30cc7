"""Hostile trace input (issue 17): devices, FIFOs and endless lines are refused at once; `-`
reads standard input; each bad input is one line naming the file (and line)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coi_sentinel.errors import TraceError
from coi_sentinel.trace import TraceReader, TraceWriter, make_header
from coi_sentinel.trace.lines import MAX_LINE_BYTES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path,what", [("/dev/zero", "a device"), ("/dev/null", "a device")])
def test_devices_are_refused(path: str, what: str) -> None:
    with pytest.raises(TraceError) as info:
        TraceReader(path)
    assert str(info.value) == f"{path}: is {what}, not a regular file (use - to read standard input)"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(TraceError, match="is a FIFO, not a regular file"):
        TraceReader(fifo)
    assert time.monotonic() - t0 < 2


def test_an_endless_line_stops_at_the_bound(tmp_path: Path, sample_events) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, make_header("test"), fsync=False) as w:
        w.write_event(sample_events[0])
    with open(path, "ab") as f:
        f.write(b"x" * (MAX_LINE_BYTES + 10))
    for lenient in (False, True):
        with TraceReader(path, lenient=lenient) as r:
            if not lenient:
                with pytest.raises(TraceError) as info:
                    list(r)
                assert (info.value.reason, info.value.line) == ("long", 4)   # header, event, footer
                assert str(info.value) == f"{path}:4: line longer than 1 MiB: not a trace line"
            else:
                assert len(list(r)) >= 1 and r.skipped["long"] == 1


def _cli(*args: str, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", *args], stdin=stdin,
                          capture_output=True, text=True, timeout=30)


def test_replay_dev_zero_is_one_line_exit_1_at_once() -> None:
    t0 = time.monotonic()
    res = _cli("replay", "/dev/zero")
    assert time.monotonic() - t0 < 5      # interpreter start-up included; the refusal is instant
    assert res.returncode == 1
    assert res.stderr == ("coi-sentinel: error: /dev/zero: is a device, not a regular file (use - "
                          "to read standard input)\n")


def test_replay_reads_standard_input(tmp_path: Path, sample_events) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, make_header("test"), fsync=False) as w:
        for ev in sample_events:
            w.write_event(ev)
    with open(path, "rb") as f:
        res = _cli("replay", "-", stdin=f)
    assert res.returncode in (0, 3), res.stderr
    assert f"replayed {len(sample_events)} events from 1 trace" in res.stderr


def test_replay_of_zeros_on_standard_input_is_one_line(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros"
    zeros.write_bytes(b"\0" * (MAX_LINE_BYTES + 5))
    with open(zeros, "rb") as f:
        res = _cli("replay", "-", stdin=f)
    assert res.returncode == 1
    assert res.stderr == "coi-sentinel: error: -:1: line longer than 1 MiB: not a trace line\n"
