"""Every way a trace can be malformed gives an error naming the file and line; lenient reading
skips and counts bad lines; nothing crashes."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from coi_sentinel.errors import TraceError
from coi_sentinel.events import codec
from coi_sentinel.trace import TraceReader, TraceWriter, make_header

pytestmark = pytest.mark.unit


def _good_trace(path: Path, events) -> list[bytes]:
    with TraceWriter(path, make_header("test"), fsync=False) as w:
        for ev in events:
            w.write_event(ev)
    return path.read_bytes().splitlines(keepends=True)


def _read_all(path: Path, lenient: bool = False):
    with TraceReader(path, lenient=lenient) as r:
        return r, list(r)


def _expect_error(path: Path, reason: str, line: int, text: str) -> TraceError:
    with pytest.raises(TraceError) as exc:
        _read_all(path)
    err = exc.value
    assert (err.reason, err.line, err.source) == (reason, line, str(path))
    assert str(err).startswith(f"{path}:{line}: ")
    assert text in str(err)
    return err


def test_truncated_last_line(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:5])
    cut = b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2]    # line 5 cut in half
    path.write_bytes(cut)
    _expect_error(path, "truncated", 5, "incomplete")
    r, items = _read_all(path, lenient=True)
    assert [ln for ln, _ in items] == [2, 3, 4]
    assert r.skipped == {"truncated": 1}


def test_last_line_without_newline_but_complete_is_read(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:3])
    path.write_bytes(b"".join(lines).rstrip(b"\n"))
    r, items = _read_all(path)
    assert r.footer is not None and len(items) == 4


def test_wrong_schema_version_fails_even_lenient(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:2])
    header = orjson.loads(lines[0])
    header["schema"] = 99
    path.write_bytes(orjson.dumps(header) + b"\n" + b"".join(lines[1:]))
    err = _expect_error(path, "schema", 1, "schema 99 is not supported")
    assert "reads schema 1" in str(err)
    with pytest.raises(TraceError, match="schema 99"):
        TraceReader(path, lenient=True)


def test_non_json_line(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:4])
    lines.insert(3, b"this is not json\n")
    path.write_bytes(b"".join(lines))
    _expect_error(path, "json", 4, "not JSON")
    r, items = _read_all(path, lenient=True)
    assert r.skipped == {"json": 1} and r.events == 4
    assert "t.jsonl:4: not JSON" in str(r.errors[0])


def test_unknown_event_type(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:3])
    bogus = codec.to_dict(sample_events[0]) | {"type": "teleport"}
    lines.insert(2, orjson.dumps(bogus) + b"\n")
    path.write_bytes(b"".join(lines))
    _expect_error(path, "event", 3, "unknown event type 'teleport'")


def test_event_missing_a_field(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:3])
    broken = codec.to_dict(sample_events[0])
    del broken["argv"]
    lines.insert(2, orjson.dumps(broken) + b"\n")
    path.write_bytes(b"".join(lines))
    _expect_error(path, "event", 3, "lacks field 'argv'")


@pytest.mark.parametrize("field,value,says", [
    ("argv", None, "field 'argv' must be a list of strings, not null"),
    ("argv", ["sh", 3], "field 'argv' must be a list of strings, not a list"),
    ("pid", "abc", "field 'pid' must be an integer, not the string 'abc'"),
    ("pid", 1.5, "field 'pid' must be an integer, not the number 1.5"),
    ("uid", True, "field 'uid' must be an integer, not true"),
    ("comm", 7, "field 'comm' must be a string, not the number 7"),
])
def test_event_field_of_wrong_json_type(tmp_path, sample_events, field, value, says):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:1])
    broken = codec.to_dict(sample_events[0]) | {field: value}
    lines.insert(1, orjson.dumps(broken) + b"\n")
    path.write_bytes(b"".join(lines))
    _expect_error(path, "event", 2, f"exec event: {says}")


def test_missing_header_starts_with_event(tmp_path, sample_events):
    path = tmp_path / "watch.jsonl"
    path.write_bytes(b"".join(codec.dumps(ev) + b"\n" for ev in sample_events[:3]))
    _expect_error(path, "header", 1, "starts with an event")
    with pytest.raises(TraceError, match="no trace header"):
        TraceReader(path, lenient=True)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    _expect_error(path, "header", 1, "empty file")


@pytest.mark.parametrize("content, text", [
    (b"\x7fELF\x02\x01\x01\x00garbage\n", "first line is not JSON"),
    (b"[1, 2, 3]\n", "not a JSON object"),
    (b'{"name": "package.json", "version": "1.0"}\n', "not a header record"),
    (b'{"record": "header", "kind": "falco-capture", "schema": 1}\n', "header kind 'falco-capture'"),
])
def test_foreign_file(tmp_path, content, text):
    path = tmp_path / "foreign.jsonl"
    path.write_bytes(content)
    _expect_error(path, "foreign", 1, text)


def test_line_neither_event_nor_record(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:2])
    lines.insert(1, b'{"hello": "world"}\n')
    lines.insert(2, b"[1, 2]\n")
    lines.insert(3, b"\n")
    path.write_bytes(b"".join(lines))
    _expect_error(path, "record", 2, "neither an event")
    r, items = _read_all(path, lenient=True)
    assert r.skipped == {"record": 1, "json": 2}
    assert r.events == 2 and r.skipped_total == 3
    assert [str(e).split(": ")[0] for e in r.errors] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_lenient_counts_every_kind_and_keeps_good_lines(tmp_path, sample_events):
    path = tmp_path / "t.jsonl"
    lines = _good_trace(path, sample_events[:6])
    bad_event = orjson.dumps(codec.to_dict(sample_events[0]) | {"type": "nope"}) + b"\n"
    body = lines[:3] + [b"{oops\n", bad_event] + lines[3:-1] + [b"{not json either\n", b'{"x": 1}\n']
    path.write_bytes(b"".join(body) + lines[-1][:10])          # and a cut footer
    r, items = _read_all(path, lenient=True)
    assert r.skipped == {"json": 2, "event": 1, "record": 1, "truncated": 1}
    assert [ev for _ln, ev in items] == sample_events[:6]


def test_gzip_stream_cut_short(tmp_path, sample_events):
    path = tmp_path / "t.jsonl.gz"
    sizes = []                                   # file size after each batch
    with TraceWriter(path, make_header("test"), batch_records=10, fsync=False) as w:
        for ev in sample_events:
            w.write_event(ev)
            if w.lines_durable == w.lines_accepted:     # a batch was just written
                sizes.append(path.stat().st_size)
    path.write_bytes(path.read_bytes()[: sizes[1] + 5])   # two batches and a few bytes more
    with pytest.raises(TraceError) as exc:
        _read_all(path)
    assert exc.value.reason == "truncated" and exc.value.line == 22
    assert str(exc.value).startswith(f"{path}:22: truncated")
    r, items = _read_all(path, lenient=True)
    assert r.skipped == {"truncated": 1}
    assert [ev for _ln, ev in items] == sample_events[:20]    # every sync-flushed batch


def test_gzip_garbage(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 64)
    with pytest.raises(TraceError) as exc:
        TraceReader(path)
    assert exc.value.reason in ("gzip", "truncated") and exc.value.line == 1


def test_concatenated_part_with_wrong_schema(tmp_path, sample_events):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    la = _good_trace(a, sample_events[:2])
    lb = _good_trace(b, sample_events[2:4])
    header_b = orjson.loads(lb[0]) | {"schema": 7}
    both = tmp_path / "both.jsonl"
    both.write_bytes(b"".join(la) + orjson.dumps(header_b) + b"\n" + b"".join(lb[1:]))
    _expect_error(both, "schema", len(la) + 1, "schema 7")


def test_unreadable_file(tmp_path):
    with pytest.raises(TraceError) as exc:
        TraceReader(tmp_path / "missing.jsonl")
    assert exc.value.reason == "io" and "missing.jsonl" in str(exc.value)
