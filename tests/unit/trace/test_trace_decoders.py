"""The reader's hot path: lines a block at a time and the codec's decoder of each type give
what the line-by-line reader and :func:`codec.from_dict` give, on the whole corpus and on
lines that are not what the writer makes (issue 18)."""

from __future__ import annotations

import gzip
import io

import orjson
import pytest

from coi_sentinel.events import codec
from coi_sentinel.replay.cases import bundled_cases_dir
from coi_sentinel.trace.lines import MAX_LINE_BYTES, iter_blocks, open_binary

TRACES = sorted((bundled_cases_dir() / "traces").glob("*.jsonl*"))


def _flat(blocks):
    return [(first + i, raw, complete) for first, lines, complete in blocks
            for i, raw in enumerate(lines)]


def test_every_corpus_event_decodes_as_from_dict_does():
    decoded = 0
    for path in TRACES:
        with open_binary(path) as f:
            for _first, lines, _complete in iter_blocks(f, str(path)):
                for raw in lines:
                    d = orjson.loads(raw)
                    if d.get("record") is not None:
                        continue
                    ev = codec.FAST_DECODERS[d["type"]](d)
                    want = codec.from_dict(d)
                    assert type(ev) is type(want) and ev == want
                    assert [type(getattr(ev, n)) for n in codec._FIELDS[type(ev)]] == \
                           [type(getattr(want, n)) for n in codec._FIELDS[type(want)]]
                    decoded += 1
    assert decoded > 50_000


_EXEC = {"type": "exec", "ts_ns": 1, "pid": 2, "tid": 2, "ppid": 1, "uid": 0, "gid": 0,
         "comm": "sh", "cgroup_id": 7, "scope_id": 7, "container": "c", "filename": "/bin/sh",
         "argv": ["sh", "-c", "id"], "argc": 3, "errno": 0, "fd": -100, "flags": 0,
         "env": ["LD_PRELOAD=/x.so"]}


@pytest.mark.parametrize("change, outcome", [
    ({}, "event"),
    ({"pid": "2"}, None), ({"pid": True}, None), ({"pid": 2.0}, None), ({"comm": None}, None),
    ({"argv": ["sh", 1]}, None), ({"argv": "sh"}, None), ({"env": [None]}, None),
    ({"argc": KeyError}, KeyError),
    ({"env": KeyError}, "event"),       # added since exec's first version: its default
])
def test_exec_decoder_declines_what_from_dict_must_judge(change, outcome):
    d = {**_EXEC, **{k: v for k, v in change.items() if v is not KeyError}}
    for k in [k for k, v in change.items() if v is KeyError]:
        del d[k]
    d = orjson.loads(orjson.dumps(d))
    if outcome is KeyError:
        with pytest.raises(KeyError):
            codec.FAST_DECODERS["exec"](d)
        return
    ev = codec.FAST_DECODERS["exec"](d)
    if outcome is None:
        assert ev is None
    else:
        assert ev == codec.from_dict(d)
        assert type(ev.argv) is tuple and type(ev.env) is tuple


def test_blocks_are_the_lines_in_order_and_say_a_cut_last_line():
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i % 700)) for i in range(3000)) + b'{"cut'
    blocks = list(iter_blocks(io.BytesIO(data), "t"))
    assert len(blocks) > 2 and all(lines for _first, lines, _complete in blocks)
    flat = _flat(blocks)
    assert [raw for _n, raw, _c in flat] == data.split(b"\n")
    assert [n for n, _raw, _c in flat] == list(range(1, 3002))
    assert [c for _n, _raw, c in flat] == [True] * 3000 + [False]


def test_blocks_before_a_long_line_are_read_then_it_fails():
    data = b"a\nb\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\nc\n"
    got = []
    with pytest.raises(Exception) as err:
        for block in iter_blocks(io.BytesIO(data), "t"):
            got.append(block)
    assert [raw for _n, raw, _c in _flat(got)] == [b"a", b"b"]
    assert err.value.line == 3 and err.value.reason == "long"


def test_blocks_of_a_gzip_stream_cut_short_name_the_next_line():
    data = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(50_000)))
    got = []
    with pytest.raises(Exception) as err:
        for block in iter_blocks(gzip.GzipFile(fileobj=io.BytesIO(data[:len(data) // 2])), "t"):
            got.append(block)
    assert err.value.reason == "truncated" and err.value.line == len(_flat(got)) + 1
