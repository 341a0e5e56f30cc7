"""Property-based tests (issue 17): the rule parser, the trace reader and the audit verifier
take any input without crashing. Bounded: a fixed number of examples, each under a deadline,
no example database written."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (the test extra) is not installed")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from coi_sentinel.audit import AuditLog, AuditPolicy, verify  # noqa: E402
from coi_sentinel.errors import TraceError  # noqa: E402
from coi_sentinel.events import codec, model  # noqa: E402
from coi_sentinel.rules import check_ruleset  # noqa: E402
from coi_sentinel.rules.diagnostics import Diagnostics  # noqa: E402
from coi_sentinel.rules.parser import ConditionSyntaxError, parse  # noqa: E402
from coi_sentinel.rules.yamlload import load_text  # noqa: E402
from coi_sentinel.trace import TraceReader, make_header  # noqa: E402
from coi_sentinel.trace.writer import TraceWriter  # noqa: E402

pytestmark = pytest.mark.unit

BOUNDED = settings(max_examples=150, deadline=timedelta(seconds=2), database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---------------------------------------------------------------- rule conditions
TOKENS = ["(", ")", "(", ")", "not", "and", "or", ",", "=", "!=", "<", ">=", "!", "'", '"', "in",
          "contains", "startswith", "regex", "glob", "cidr", "exists", "proc.name", "proc.args",
          "proc.aname[2]", "net.dip", "evt.type", "exec", "proc.pid", "10.0.0.0/8", "'(a+)+$'",
          "\"x'y\"", "shells", "my_macro", "proc.is_shell", "[", "]", "\\", "\n", "%proc.name",
          "''", "1", "-1", "99999999999999999999", "a" * 50]
condition_text = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)), max_size=60).map(" ".join)


@BOUNDED
@given(condition_text)
def test_the_parser_returns_a_tree_or_a_syntax_error(text: str) -> None:
    try:
        parse(text)
    except ConditionSyntaxError as err:
        assert "\n" not in err.message


@BOUNDED
@given(condition_text, condition_text)
def test_a_rule_file_with_any_condition_gives_diagnostics(tmp_path: Path, cond: str, macro: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        - macro: my_macro
          condition: {json.dumps(macro)}
        - list: shells
          items: [bash, sh]
        - rule: r
          description: d
          severity: high
          events: [exec, connect]
          condition: {json.dumps(cond)}
          output: "hit %proc.name"
        """))
    rs = check_ruleset([path], replace_bundled=True)
    for diag in rs.diagnostics:
        assert "\n" not in str(diag)


@BOUNDED
@given(st.text(max_size=400))
def test_any_yaml_text_gives_data_or_diagnostics(text: str) -> None:
    diags = Diagnostics()
    load_text(text, "x.yaml", diags)
    for diag in diags:
        assert "\n" not in str(diag)


# ---------------------------------------------------------------- trace lines
HEADER = orjson.dumps(make_header("test")) + b"\n"
_EXEC = codec.to_dict(model.ExecEvent(ts_ns=1, pid=2, tid=2, ppid=1, uid=0, gid=0, comm="sh",
                                      cgroup_id=3, scope_id=3, container="c", filename="/bin/sh",
                                      argv=("sh",), argc=1, errno=0, fd=-100, flags=0))
utf8 = st.characters(blacklist_categories=("Cs",))        # orjson writes only valid UTF-8
json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                                    st.floats(allow_nan=False), st.text(utf8, max_size=10)),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(utf8, max_size=5), inner, max_size=3),
                          max_leaves=8)
mutated_event = st.builds(lambda key, value: {**_EXEC, key: value},
                          st.sampled_from(sorted(_EXEC)), json_value).map(orjson.dumps)
record = st.builds(lambda kind, extra: {"record": kind, **extra},
                   st.one_of(st.sampled_from(["header", "footer", "alert", "drops", "context"]), json_value),
                   st.dictionaries(st.sampled_from(["schema", "kind", "counts", "lost", "_n", "_h"]), json_value,
                                   max_size=3)).map(lambda d: orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS))
big_int = st.sampled_from([b"pid", b"ts_ns", b"argc"]).map(lambda k: orjson.dumps(_EXEC).replace(b'"' + k + b'":', b'"' + k + b'":99999999999999999999999,' + b'"x":'))
trace_line = st.one_of(mutated_event, record, st.binary(max_size=60), json_value.map(orjson.dumps), big_int)


@BOUNDED
@given(st.lists(trace_line, max_size=12), st.booleans())
def test_the_trace_reader_yields_or_raises_one_trace_error(tmp_path: Path, lines: list[bytes], lenient: bool) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(HEADER + b"\n".join(lines))
    try:
        with TraceReader(path, lenient=lenient) as reader:
            for _lineno, item in reader:
                if isinstance(item, model.Event):
                    assert codec.from_dict(codec.to_dict(item)) == item
    except TraceError as err:
        assert not lenient or err.line in (None, 1) or err.reason in ("long", "gzip", "io")
        assert "\n" not in str(err)


@pytest.fixture(scope="module")
def bundled():
    from coi_sentinel.rules import load_ruleset

    return load_ruleset(None)


event_kinds = st.sampled_from(sorted(model.FIELD_NAMES, key=lambda c: c.__name__))
_TEXT = st.sampled_from(["", "/bin/sh", "bash", "/tmp/x", "10.0.0.1", "::1", "inet", "inet6",
                         "unix", "/root/.ssh/id_rsa", "\\xff", "a" * 300, "curl", "sensitive", "write"])
_INT = st.one_of(st.integers(-2**63, 2**63 - 1), st.sampled_from([0, 1, -1, 2, 3, 22, 443, 115]))


@st.composite
def typed_event(draw):
    from dataclasses import fields
    cls = draw(event_kinds)
    d = {"type": cls.type.label}
    for f in fields(cls):
        kind = str(f.type)
        d[f.name] = (draw(_INT) if kind == "int" else draw(_TEXT) if kind == "str"
                     else draw(st.booleans()) if kind == "bool" else draw(st.lists(_TEXT, max_size=4)))
    return orjson.dumps(d)


@settings(BOUNDED, max_examples=60)
@given(st.lists(st.one_of(typed_event(), trace_line), max_size=30))
def test_replay_of_any_well_typed_events_never_crashes(tmp_path: Path, bundled, lines: list[bytes]) -> None:
    """Events that pass the reader's type checks go through the process table and every
    bundled rule without an exception."""
    from coi_sentinel.replay import replay

    path = tmp_path / "t.jsonl"
    path.write_bytes(HEADER + b"\n".join(lines) + b"\n")
    replay([path], bundled, lenient=True)


@settings(BOUNDED, max_examples=80)
@given(st.dictionaries(st.sampled_from(["start_ns", "start_time", "drops", "coverage", "source",
                                        "kernel", "boot_id", "chain"]), json_value, max_size=5),
       st.sampled_from([b"", orjson.dumps(_EXEC) + b"\n"]))
def test_replay_takes_any_header_fields(tmp_path: Path, bundled, fields: dict, body: bytes) -> None:
    from coi_sentinel.replay import replay, wall_offset_ns

    header = {**orjson.loads(HEADER), **fields}
    path = tmp_path / "t.jsonl"
    path.write_bytes(orjson.dumps(header) + b"\n" + body)
    wall_offset_ns(header)
    result = replay([path], bundled)
    assert result.events == (1 if body else 0)


# ---------------------------------------------------------------- audit logs
@pytest.fixture(scope="module")
def audit_log(tmp_path_factory) -> tuple[Path, bytes, bytes]:
    root = tmp_path_factory.mktemp("audit")
    path = root / "a.jsonl"
    with AuditLog(path, make_header("test"), policy=AuditPolicy(fsync=False, max_bytes=None,
                                                                max_age=None, retention=None)) as log:
        for i in range(6):
            log.write_event(codec.from_dict({**_EXEC, "pid": 100 + i}))
        log.write_alert({"rule": "r", "severity": "high", "scope_id": 3})
    return path, path.read_bytes(), (root / "a.head").read_bytes()


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.integers(0, 20), st.integers(1, 3)),
    st.tuples(st.just("duplicate"), st.integers(0, 20)),
    st.tuples(st.just("swap"), st.integers(0, 20), st.integers(0, 20)),
    st.tuples(st.just("insert"), st.integers(0, 20), st.binary(max_size=40)),
)


def _mutate(data: bytes, m: tuple) -> bytes:
    lines = data.splitlines(keepends=True)
    kind = m[0]
    if not data:
        return m[2] if kind == "insert" else data
    if kind == "truncate":
        return data[:m[1] % (len(data) + 1)]
    if kind == "flip":
        i = m[1] % len(data)
        return data[:i] + bytes([data[i] ^ m[2]]) + data[i + 1:]
    i = m[1] % len(lines)
    if kind == "delete":
        return b"".join(lines[:i] + lines[i + m[2]:])
    if kind == "duplicate":
        return b"".join(lines[:i + 1] + lines[i:])
    if kind == "swap":
        j = m[2] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)
    return b"".join(lines[:i] + [m[2] + b"\n"] + lines[i:])


@BOUNDED
@given(st.lists(mutation, min_size=1, max_size=3))
def test_the_verifier_finds_every_change_and_never_crashes(audit_log, mutations) -> None:
    path, original, head = audit_log
    data = original
    for m in mutations:
        data = _mutate(data, m)
    path.write_bytes(data)
    path.with_name("a.head").write_bytes(head)
    report = verify([path])
    for f in report.problems + report.notes:
        assert "\n" not in str(f)
    assert report.ok == (data == original), (mutations, [str(p) for p in report.problems])


@BOUNDED
@given(st.binary(max_size=300))
def test_the_verifier_takes_any_head_file(audit_log, head: bytes) -> None:
    path, original, _head = audit_log
    path.write_bytes(original)
    path.with_name("a.head").write_bytes(head)
    report = verify([path])
    assert not report.ok and all(p.kind == "cut" for p in report.problems)
