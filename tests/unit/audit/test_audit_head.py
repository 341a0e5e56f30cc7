"""The sealed head file (issue 17): lines or files cut from the end of an audit log are found
and named; a forged, missing or foreign head is a problem; copies and exports verify without
it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy, verify
from coi_sentinel.audit import head as head_mod
from coi_sentinel.audit.export import export
from coi_sentinel.trace import make_header

pytestmark = pytest.mark.unit


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def cut_problems(paths) -> list:
    return [p for p in verify(paths).problems if p.kind == "cut"]


def test_the_head_follows_each_durable_batch(tmp_path, fast_policy, make_event):
    path = tmp_path / "s.jsonl"
    log = AuditLog(path, make_header("test"), policy=fast_policy)
    try:
        head = head_mod.read(tmp_path / "s.head")
        assert (head["n"], head["file"], head["closed"], head["log"]) == (0, 0, False, "s.jsonl")
        log.write_event(make_event(1))
        log.write_alert({"rule": "r", "severity": "high", "scope_id": 700})   # fsync'd at once
        head = head_mod.read(tmp_path / "s.head")
        assert head["n"] == 2 and head["h"] == log.head
    finally:
        log.close()
    head = head_mod.read(tmp_path / "s.head")
    assert head["closed"] and head["n"] == 3 and head["h"] == log.head
    assert verify([path]).ok


def test_a_cut_of_whole_lines_is_named(closed_log):
    lines = lines_of(closed_log)
    closed_log.write_bytes(b"".join(lines[:10]))
    (problem,) = cut_problems([closed_log])
    assert (problem.path, problem.line) == (str(closed_log), 11)
    assert "14 records cut from its end" in problem.message


def test_a_rewritten_end_is_named(closed_log, fast_policy, make_event):
    """Cut the closed file and append a new, validly chained end: same count, other hash."""
    from coi_sentinel.audit.chain import HashChain, unseal

    lines = lines_of(closed_log)
    keep = lines[:-2]
    _body, n, h = unseal(keep[-1].rstrip(b"\n"))
    chain = HashChain(h, n + 1)
    forged = [chain.seal(b'{"record":"alert","rule":"nothing"}') + b"\n",
              chain.seal(b'{"record":"footer","events":0,"records":0}') + b"\n"]
    closed_log.write_bytes(b"".join(keep + forged))
    (problem,) = cut_problems([closed_log])
    assert "does not match the hash its head file audit.head sealed" in problem.message


def test_removed_later_files_are_named(tmp_path, make_event):
    policy = AuditPolicy(fsync=False, max_bytes=None, max_age=None, retention=None)
    path = tmp_path / "r.jsonl"
    with AuditLog(path, make_header("test"), policy=policy) as log:
        log.write_event(make_event(1))
        first = log.rotate()
        log.write_event(make_event(2))
        log.rotate()
        log.write_event(make_event(3))
    path.unlink()                         # the newest file goes
    report = verify([first, tmp_path / "r.000002.jsonl"])
    (problem,) = [p for p in report.problems if p.kind == "cut"]
    assert "says it reached file 2" in problem.message and "later files were removed" in problem.message


def test_a_forged_head_is_named(closed_log):
    head_file = closed_log.with_name("audit.head")
    d = orjson.loads(head_file.read_bytes())
    d["n"] -= 3                           # to hide a cut of three lines
    head_file.write_bytes(orjson.dumps(d))
    closed_log.write_bytes(b"".join(lines_of(closed_log)[:-3]))
    (problem,) = cut_problems([closed_log])
    assert problem.message == ("the head file's seal does not match: it was edited (or sealed "
                               "with another host's key)")


def test_a_missing_head_is_named(closed_log):
    closed_log.with_name("audit.head").unlink()
    (problem,) = cut_problems([closed_log])
    assert "its sealed head file audit.head is missing" in problem.message


@pytest.mark.parametrize("content", [b"", b"\0" * 10_000, b'{"record":"head"}', b"[1,2]",
                                     b'{"record":"head","kind":"coi-sentinel-trace","n":"x"}'])
def test_a_garbage_head_is_one_problem(closed_log, content):
    closed_log.with_name("audit.head").write_bytes(content)
    (problem,) = cut_problems([closed_log])
    assert problem.message.startswith("unusable head file: ") and "\n" not in problem.message


def test_a_copy_or_an_export_verifies_without_the_head(closed_log, tmp_path):
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    copy = elsewhere / "evidence.jsonl"
    shutil.copy(closed_log, copy)
    assert verify([copy]).ok
    out = tmp_path / "export.jsonl"
    export([closed_log], out)
    assert verify([out]).ok


def test_a_head_behind_the_log_is_fine(closed_log, fast_policy, make_event):
    """A crash between writing lines and rewriting the head leaves the head behind: true."""
    head_file = closed_log.with_name("audit.head")
    old = head_file.read_bytes()
    with AuditLog(closed_log, make_header("test"), policy=fast_policy) as log:
        log.write_event(make_event(30))
    head_file.write_bytes(old)            # as if the new head never reached the disk
    files = sorted(closed_log.parent.glob("audit*.jsonl"))
    assert not cut_problems(files)


def test_audit_verify_cli_names_the_cut_in_one_line(closed_log):
    closed_log.write_bytes(b"".join(lines_of(closed_log)[:-1]))
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", "audit", "verify",
                          str(closed_log)], capture_output=True, text=True, timeout=30)
    assert time.monotonic() - t0 < 10
    assert res.returncode == 1 and "Traceback" not in res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith(f"NOT intact: 1 problem in 1 file; the first: {closed_log}:24: the log "
                           "ends at record 22 (line 23)")
