"""`verify`: each tampering case of issue 7 gets a verdict naming the file and line."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pytest

from coi_sentinel.audit import AuditLog, verify
from coi_sentinel.audit.chain import GENESIS, HashChain, link, unseal
from coi_sentinel.audit.export import export
from coi_sentinel.errors import AuditError
from coi_sentinel.trace import TraceReader, TraceWriter, make_header, read_events

pytestmark = pytest.mark.unit


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def first_problem(paths):
    report = verify(paths)
    assert not report.ok, "tampering went unnoticed"
    return report.problems[0], report


def test_intact_log(closed_log):
    report = verify([closed_log])
    assert report.ok and report.problems == [] and report.notes == []
    assert report.lines == 24
    (head,) = report.heads.values()
    assert head == unseal(lines_of(closed_log)[-1].rstrip(b"\n"))[2]


def test_seal_format_and_chain():
    chain = HashChain()
    line = chain.seal(b'{"record":"x","a":1}')
    assert line.startswith(b'{"record":"x","a":1,"_n":0,"_h":"')
    numbered, n, h = unseal(line)
    assert numbered == b'{"record":"x","a":1,"_n":0}' and n == 0
    assert h == link(GENESIS, numbered) == chain.prev
    assert orjson.loads(line) == {"record": "x", "a": 1, "_n": 0, "_h": h}
    assert unseal(b'{"record":"x"}') is None
    with pytest.raises(ValueError):
        chain.seal(b"{}")


def test_seal_line_is_the_sealed_line_with_its_newline():
    """What the audit log's writer buffers: the bytes ``seal`` gives plus a newline, chained
    line after line as ``link`` recomputes them (numbers of several digits included)."""
    by_line, by_seal = HashChain(), HashChain()
    prev = GENESIS
    for i in range(1200):
        body = b'{"type":"exit","pid":%d,"comm":"\xc3\xa9t\\u00e9"}' % i
        line = by_line.seal_line(body)
        assert line == by_seal.seal(body) + b"\n"
        numbered, n, h = unseal(line[:-1])
        assert n == i and numbered == body[:-1] + b',"_n":%d}' % i
        assert h == link(prev, numbered) == by_line.prev
        prev = h
    assert by_line.n == by_seal.n == 1200


def test_edited_line(closed_log):
    lines = lines_of(closed_log)
    lines[5] = lines[5].replace(b'"env","4"', b'"env","5"')
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line, problem.path) == ("edited", 6, str(closed_log))
    assert str(problem).startswith(f"{closed_log}:6: record 5 does not match its hash")


def test_edited_and_rehashed_line_breaks_the_next(closed_log):
    lines = lines_of(closed_log)
    prev_h = unseal(lines[4].rstrip(b"\n"))[2]
    numbered, n, _h = unseal(lines[5].rstrip(b"\n"))
    forged = numbered.replace(b'"env","4"', b'"env","5"')
    lines[5] = forged[:-1] + b',"_h":"' + link(prev_h, forged).encode() + b'"}\n'
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("edited", 7)


def test_edited_header(closed_log):
    lines = lines_of(closed_log)
    lines[0] = lines[0].replace(b'"source":"test"', b'"source":"tset"')
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("edited", 1)


def test_deleted_line(closed_log):
    lines = lines_of(closed_log)
    del lines[7]
    write_lines(closed_log, lines)
    problem, report = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("missing", 8)
    assert "record 7 is missing before this line" in problem.message
    assert len(report.problems) == 1                  # later lines are not all reported


def test_deleted_lines(closed_log):
    lines = lines_of(closed_log)
    del lines[7:10]
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("missing", 8)
    assert "records 7..9 are missing" in problem.message


def test_duplicated_line(closed_log):
    lines = lines_of(closed_log)
    lines.insert(10, lines[9])
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("duplicated", 11)
    assert "repeats line 10" in problem.message


def test_reordered_lines(closed_log):
    lines = lines_of(closed_log)
    lines[11], lines[12] = lines[12], lines[11]
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("reordered", 12)
    assert "comes before record 11 (line 13)" in problem.message


def test_line_moved_back(closed_log):
    lines = lines_of(closed_log)
    moved = lines.pop(15)
    lines.insert(4, moved)
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("reordered", 5)


def test_truncated_file(closed_log):
    data = closed_log.read_bytes()
    closed_log.write_bytes(data[: len(data) - 30])
    problem, report = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("truncated", 24)
    assert "incomplete last line" in problem.message


def test_cut_at_a_line_boundary_is_named_by_the_sealed_head(closed_log):
    """The chain alone cannot tell lines cut from the end from a crash; the sealed head file
    beside the log names the last record written (issue 17)."""
    write_lines(closed_log, lines_of(closed_log)[:-3])
    report = verify([closed_log])
    assert not report.ok
    (problem,) = report.problems
    assert (problem.kind, problem.line) == ("cut", 22)
    assert problem.message.startswith("the log ends at record 20 (line 21), but its head file "
                                      "audit.head (sealed ")
    assert problem.message.endswith("says record 23 was written: 3 records cut from its end")
    (note,) = report.notes
    assert (note.kind, note.line) == ("open", 21)


def test_inserted_unsealed_line(closed_log):
    lines = lines_of(closed_log)
    lines.insert(3, b'{"record":"alert","rule":"planted"}\n')
    write_lines(closed_log, lines)
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("unsealed", 4)


def test_line_after_footer(closed_log):
    lines = lines_of(closed_log)
    write_lines(closed_log, lines + [lines[-2]])
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("after-footer", 25)


def test_first_lines_deleted(closed_log):
    write_lines(closed_log, lines_of(closed_log)[2:])
    problem, _ = first_problem([closed_log])
    assert (problem.kind, problem.line) == ("missing", 1)
    assert "does not start with its header" in problem.message


@pytest.mark.parametrize("content, text", [
    (b"root:x:0:0:root:/root:/bin/bash\n", "first line is not JSON"),
    (b'{"some": "json"}\n', "not a coi-sentinel header"),
    (b"", "empty file"),
])
def test_foreign_file(tmp_path, content, text):
    path = tmp_path / "foreign.jsonl"
    path.write_bytes(content)
    problem, _ = first_problem([path])
    assert problem.kind == "foreign" and text in problem.message


def test_plain_trace_is_not_an_audit_log(tmp_path, make_event):
    path = tmp_path / "plain.jsonl"
    with TraceWriter(path, make_header("record")) as w:
        w.write_event(make_event(1))
    problem, _ = first_problem([path])
    assert (problem.kind, problem.line) == ("foreign", 1)
    assert "a trace without a hash chain" in problem.message


def test_missing_file_is_reported(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        for i in range(30):
            log.write_event(make_event(i))
            if i % 10 == 9:
                log.rotate()
    files = log.files()
    assert len(files) == 4
    assert verify(files).ok
    problem, _ = first_problem(files[:1] + files[2:])
    assert (problem.kind, problem.path, problem.line) == ("missing-file", str(files[2]), 1)
    assert "chain file 1 is missing" in problem.message


def test_cut_end_of_a_rotated_file(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        for i in range(20):
            log.write_event(make_event(i))
            if i == 9:
                log.rotate()
    first, second = log.files()
    write_lines(first, lines_of(first)[:-2])             # footer and one event removed
    problem, _ = first_problem([first, second])
    assert (problem.kind, problem.path, problem.line) == ("unlinked", str(second), 1)
    assert "lines were cut from its end (after line 10)" in problem.message


def test_duplicated_file(tmp_path, closed_log):
    copy = tmp_path / "copy.jsonl"
    shutil.copy(closed_log, copy)
    problem, _ = first_problem([closed_log, copy])
    assert (problem.kind, problem.path) == ("duplicate-file", str(copy))
    assert "a copy of audit.jsonl" in problem.message


def test_files_given_in_any_order_and_gzipped(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        for i in range(30):
            log.write_event(make_event(i))
            if i % 10 == 9:
                log.rotate()
    files = log.files()
    gz = files[1].with_name(files[1].name + ".gz")
    gz.write_bytes(gzip.compress(files[1].read_bytes()))
    files[1].unlink()
    shuffled = [files[3], gz, files[0], files[2]]
    report = verify(shuffled)
    assert report.ok, report.problems
    assert report.ordered_paths() == [str(files[0]), str(gz), str(files[2]), str(files[3])]


def test_export_verifies_and_replays_as_the_files_did(tmp_path, make_event, fast_policy):
    path = tmp_path / "audit.jsonl"
    events = [make_event(i) for i in range(30)]
    with AuditLog(path, make_header("test"), policy=fast_policy) as log:
        for i, ev in enumerate(events):
            log.write_event(ev)
            if i % 10 == 9:
                log.rotate()
    heads = verify(log.files()).heads
    for name in ("bundle.jsonl", "bundle.jsonl.gz"):
        out = tmp_path / name
        result = export(reversed(log.files()), out)
        assert (out.stat().st_mode & 0o777) == 0o600
        assert result.lines == verify(log.files()).lines
        report = verify([out])
        assert report.ok and report.heads == heads
        assert list(read_events([out])) == events
    lines = lines_of(log.files()[1])
    lines[3] = lines[3].replace(b'"env"', b'"vne"')
    write_lines(log.files()[1], lines)
    with pytest.raises(AuditError, match="verification failed: .*:4: record"):
        export(log.files(), tmp_path / "refused.jsonl")
    assert not (tmp_path / "refused.jsonl").exists()
    forced = export(log.files(), tmp_path / "forced.jsonl", force=True)
    assert forced.report is not None and not forced.report.ok
    problem, _ = first_problem([tmp_path / "forced.jsonl"])
    assert problem.kind == "edited"


def test_audit_log_replays_as_a_trace(closed_log, make_event):
    with TraceReader(closed_log) as r:
        items = [it for _ln, it in r]
        assert "chain" in r.header and "_h" not in r.header
    assert [it for it in items if not isinstance(it, dict)] == [make_event(i) for i in range(20)]
    records = [it for it in items if isinstance(it, dict)]
    assert [r["record"] for r in records] == ["alert", "action", "footer"]
    assert all(not k.startswith("_") for r in records for k in r)


def test_gzipped_file_cut_short(tmp_path, closed_log):
    gz = tmp_path / "audit.000001.jsonl.gz"
    data = gzip.compress(closed_log.read_bytes())
    gz.write_bytes(data[: len(data) // 2])
    problem, _ = first_problem([gz])
    assert problem.kind == "truncated" and problem.path == str(gz) and problem.line is not None
