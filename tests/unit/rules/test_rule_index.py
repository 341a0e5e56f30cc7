"""The rule index (coi_sentinel/rules/index.py): an event meets only the conditions that can
match it, and the hits are exactly those of the plain match functions."""

from __future__ import annotations

from typing import Any

import pytest

from coi_sentinel.events import model as m
from coi_sentinel.events.proctable import ProcessTable
from coi_sentinel.events.types import EventType
from coi_sentinel.replay.cases import bundled_cases_dir
from coi_sentinel.rules import load_ruleset
from coi_sentinel.rules.context import EvalContext
from coi_sentinel.rules.compiler import Namespace
from coi_sentinel.rules.index import FieldIndex, guard, match_functions
from coi_sentinel.trace import read_events

pytestmark = pytest.mark.unit


def test_field_index_exact_prefix_suffix() -> None:
    ix = FieldIndex()
    ix.add("eq", "/etc/shadow", 1)
    ix.add("prefix", "/etc/sudoers", 2)       # not at a "/" boundary: /etc/sudoers.d/x too
    ix.add("prefix", "/tmp/", 3)
    ix.add("suffix", ".aws/credentials", 4)   # with a "/": keyed by its last component
    ix.add("suffix", ".env", 5)               # without: keyed by length
    ix.add("suffix", "id_rsa", 6)
    ix.add("prefix", "ab", 7)                 # no "/" at all: tried on every value

    def found(v: Any) -> list[int]:
        out: list[int] = []
        ix(v, out)
        return sorted(out)

    assert found("/etc/shadow") == [1]
    assert found("/etc/sudoers") == [2]
    assert found("/etc/sudoers.d/90-agent") == [2]
    assert found("/etc/sudo") == []
    assert found("/tmp/x/y.env") == [3, 5]
    assert found("/home/u/.aws/credentials") == [4]
    assert found("credentials") == []
    assert found("/home/u/.ssh/id_rsa") == [6]
    assert found("abc/.env") == [5, 7]
    assert found(None) == [] and found(7) == []
    assert len(ix) == 7


def test_field_index_with_many_literals_finds_what_a_walk_of_all_finds() -> None:
    """Hundreds of literals sharing their starts (a larger rule set made from the bundled
    one): the index finds exactly the literals a plain test of each one finds."""
    import random

    rnd = random.Random(7)
    stems = ["/etc/cron", "/etc/crontab", "/etc/sudoers", "/var/log/", "/dev/shm/", "ld-", "id_rsa",
             ".env", ".aws/credentials", "/proc/", "a[b*", "é/x"]
    literals = [(kind, stem + tag) for stem in stems for tag in ("", "#1", "#2", ".d/x")
                for kind in ("prefix", "suffix", "contains")]
    ix = FieldIndex()
    for cid, (kind, literal) in enumerate(literals):
        ix.add(kind, literal, cid)
    test = {"prefix": str.startswith, "suffix": str.endswith, "contains": lambda v, x: x in v}
    values = [f"{a}{b}{c}" for a in ("", "/home/u/", "/etc/") for b in stems for c in ("", "#1", "x", ".d/x/y")]
    values += ["".join(rnd.choice("/etcron#1.dxvlg") for _ in range(rnd.randint(0, 14))) for _ in range(300)]
    for value in values:
        found: list[int] = []
        ix(value, found)
        want = [cid for cid, (kind, literal) in enumerate(literals) if test[kind](value, literal)]
        assert sorted(found) == want, value


def test_inline_conditions_share_their_first_test(rules: Any, rule_yaml: Any) -> None:
    """Unguarded conditions starting with the same test are written under one ``if``; what
    holds, and the order of the ids, are those of the plain function."""
    from coi_sentinel.events.proctable import ProcessTable as Table
    from coi_sentinel.rules.context import EvalContext as Ctx

    rs = rules.load(
        rule_yaml("a", "'evt.errno = 0 and proc.args icontains \"-x\"'"),
        rule_yaml("b", "'evt.errno = 1 and proc.args icontains \"-y\"'"),
        rule_yaml("c", "'evt.errno = 0 and proc.args icontains \"-y\"'"),
        rule_yaml("d", "'evt.errno = 0'"),
        rule_yaml("e", "'evt.errno = 1 and not proc.args icontains \"-y\"'"),
    )
    plain, _, _ = match_functions(Namespace(), rs.matchers, indexed=False)
    indexed, code, _ = match_functions(Namespace(), rs.matchers, min_conditions=0)
    assert code[EventType.EXEC].count("(ev.errno) == ") == 3      # a, c under one test; b, e; d
    table = Table()
    ctx = Ctx(table, None)
    seen = set()
    for errno in (0, 1, 2):
        for args in (("-x",), ("-y",), ("-x", "-Y"), ()):
            ev = m.ExecEvent(**{**_exec_fields(), "errno": errno, "argv": ("tool", *args), "argc": 1 + len(args)})
            proc = table.apply(ev)
            got = indexed[m.ExecEvent](ev, proc, ctx)
            assert got == plain[m.ExecEvent](ev, proc, ctx) == sorted(got)
            seen.add(tuple(got))
    assert {(0, 2, 3), (0, 3), (1,), (4,)} <= seen


def _exec_fields() -> dict[str, Any]:
    from dataclasses import MISSING, fields

    values = {"str": "", "int": 0, "bool": False, "tuple[str, ...]": ()}
    return {f.name: values[str(f.type)] for f in fields(m.ExecEvent) if f.default is MISSING}


def test_guards_of_typed_conditions(rules: Any, rule_yaml: Any) -> None:
    rs = rules.load(
        rule_yaml("a", "'proc.name in (nc, ncat) and proc.args contains \"-e\"'"),
        rule_yaml("b", "'file.kind = write and file.path startswith /etc/cron'", "[file_open]"),
        rule_yaml("c", "'proc.name = curl or file.path endswith .pem'", "[exec, file_open]"),
        rule_yaml("d", "'not proc.name = bash'"),
        rule_yaml("e", "'proc.args contains x or proc.name = y'"),
    )
    by_id = {c.id: c.conditions[0].node for c in rs.rules}

    def alts(rid: str, etype: EventType) -> Any:
        g = guard(by_id[rid], etype)
        return None if g is None else sorted((u.name, kind, lit) for u, kind, lit in g)

    assert alts("a", EventType.EXEC) == [("proc.name", "eq", "nc"), ("proc.name", "eq", "ncat")]
    # file.kind has few values: the path prefix is the guard
    assert alts("b", EventType.FILE_OPEN) == [("file.path", "prefix", "/etc/cron")]
    # on exec, file.path has no value: that side of the "or" drops out
    assert alts("c", EventType.EXEC) == [("proc.name", "eq", "curl")]
    assert alts("c", EventType.FILE_OPEN) == [("file.path", "suffix", ".pem"), ("proc.name", "eq", "curl")]
    assert alts("d", EventType.EXEC) is None
    assert alts("e", EventType.EXEC) is None
    # four conditions are tested inline: the index serves types with more than a few
    assert rs.index_stats["exec"] == {"inline": 4, "indexed": 0, "fields": 0}
    _, _, stats = match_functions(Namespace(), rs.matchers, min_conditions=0)
    assert stats["exec"] == {"inline": 2, "indexed": 2, "fields": 1}


def test_a_guard_on_a_weak_field_is_not_used(rules: Any, rule_yaml: Any) -> None:
    """evt.errno = 0 holds for nearly every exec: such a condition is cheaper inline."""
    rs = rules.load(rule_yaml("w", "'evt.errno = 0 and proc.args icontains \"-x\"'"),
                    rule_yaml("s", "'evt.errno = 0 and proc.name = nc'"))
    [w, s] = [c.conditions[0].node for c in rs.rules]
    assert guard(w, EventType.EXEC) is not None          # a guard exists...
    _, _, stats = match_functions(Namespace(), rs.matchers, min_conditions=0)
    assert stats["exec"] == {"inline": 1, "indexed": 1, "fields": 1}   # ...but only nc's is used


def _corpus() -> list[m.Event]:
    traces = sorted((bundled_cases_dir() / "traces").glob("*.jsonl.gz"))
    assert traces, "the rule test corpus is part of the package"
    return list(read_events(traces))


def test_indexed_hits_equal_plain_hits_on_the_corpus() -> None:
    """Every event of every corpus trace: the indexed match functions return the same
    condition ids, in the same order, as the plain ones (which test every condition)."""
    rs = load_ruleset(None)
    plain, _, _ = match_functions(Namespace(), rs.matchers, indexed=False)
    indexed, _, stats = match_functions(Namespace(), rs.matchers, indexed=True, min_conditions=0)
    assert sum(s["indexed"] for s in stats.values()) > sum(s["inline"] for s in stats.values())
    table = ProcessTable()
    ctx = EvalContext(table, None)
    events = _corpus()
    compared = hits = 0
    for ev in events:
        proc = table.apply(ev)
        fa, fb = plain.get(type(ev)), indexed.get(type(ev))
        assert (fa is None) == (fb is None)
        if fa is None:
            continue
        a, b = fa(ev, proc, ctx), fb(ev, proc, ctx)
        assert a == b, (ev, a, b)
        compared += 1
        hits += len(a)
    assert compared > 5000 and hits > 100


def test_rules_with_shared_literals_all_fire(rules: Any, rule_yaml: Any, ev: Any) -> None:
    """Several rules behind one literal, a rule behind two fields: each fires once."""
    from coi_sentinel.rules import Engine

    rs = rules.load(
        rule_yaml("one", "'proc.name = nc'"),
        rule_yaml("two", "'proc.name in (nc, socat) and proc.args contains \"-e\"'"),
        rule_yaml("three", "'proc.name = nc or proc.exe endswith /ncat'"),
        rule_yaml("four", "'proc.args contains \"-e\"'"),
    )
    alerts: list = []
    eng = Engine(rs, on_alert=alerts.append)
    eng.feed(ev.exec(10, "/usr/bin/nc", "nc", "-e", "/bin/sh"))
    assert [a.rule for a in alerts] == ["one", "two", "three", "four"]


def test_code_shows_the_index() -> None:
    rs = load_ruleset(None)
    src = rs.code[EventType.FILE_OPEN]
    assert "found = []" in src and "_cond_" in src


def test_equal_stateful_rules_share_their_state_and_all_fire(rules: Any, rule_yaml: Any, ev: Any) -> None:
    """Copies of a threshold rule (and of a sequence rule) that differ only in id and output
    are fed once; each alerts."""
    from coi_sentinel.rules import Engine

    threshold = "\nthreshold:\n  by: [proc.pid]\n  window: 1s\n  above: 2\n"
    sequence = """
        sequence:
          scope: process
          window: 10s
          steps:
            - name: opened
              events: [file_open]
              condition: file.name = id_rsa
            - name: connected
              events: [connect]
              condition: net.dport = 443
        """
    seq_rule = """\
- rule: {rid}
  description: test rule {rid}
  severity: high
  output: "seq {rid} %proc.name"
  tags: [T1059]
  false_positives: none
""" + "  " + "\n  ".join(line[8:] for line in sequence.strip("\n").splitlines()) + "\n"
    rs = rules.load(rule_yaml("t1", "'proc.name = curl'", extra=threshold),
                    rule_yaml("t2", "'proc.name = curl'", extra=threshold, output="other %proc.pid"),
                    seq_rule.format(rid="s1"), seq_rule.format(rid="s2"))
    eng = Engine(rs, on_alert=(alerts := []).append)
    assert len(eng._sequences) == 1 and len(eng._thresholds) == 1
    for i in range(3):
        eng.feed(ev.exec(10, "/usr/bin/curl", "curl", ts=1_000_000_000 + i))
    eng.feed(ev.open(20, "/home/u/.ssh/id_rsa", ts=2_000_000_000))
    eng.feed(ev.connect(20, "10.0.0.1", 443, ts=2_000_000_001))
    assert sorted(a.rule for a in alerts) == ["s1", "s2", "t1", "t2"]


def test_equal_conditions_of_a_type_without_index_are_tested_once(rules: Any, rule_yaml: Any, ev: Any) -> None:
    """A type with few conditions has them inline, and equal ones (rules that differ in what
    they say: the downloaded-file sequences' first step on file_write) are one test."""
    from coi_sentinel.rules import Engine

    cond = "'proc.name = curl and proc.args contains \"-o\"'"
    rs = rules.load(rule_yaml("a", cond), rule_yaml("b", "'proc.name = wget'"), rule_yaml("c", cond),
                    rule_yaml("d", cond))
    src = rs.code[EventType.EXEC]
    assert rs.index_stats["exec"] == {"inline": 4, "indexed": 0, "fields": 0}
    assert src.count(" in ((_c_proc_args") == 1 and "hits += (0, 2, 3)" in src, src   # tested once
    alerts: list = []
    Engine(rs, on_alert=alerts.append).feed(ev.exec(10, "/usr/bin/curl", "curl", "-o", "x"))
    assert [a.rule for a in alerts] == ["a", "c", "d"]


def test_the_gate_of_a_field_index_passes_every_value_that_has_a_hit() -> None:
    """The generated code runs an index's walk only past its gate (a substring or prefix
    regex, or the value's last characters among the suffixes'): the gate must pass every value
    the walk finds something in, and turn away values that end with no suffix's tail."""
    import random

    rnd = random.Random(11)
    ix = FieldIndex()
    for cid, (kind, literal) in enumerate([("prefix", "/etc/cron"), ("prefix", "/var/log/"),
                                           ("suffix", ".aws/credentials"), ("suffix", ".env"),
                                           ("suffix", "rc"), ("contains", "/.git/hooks/"),
                                           ("suffix", "/environ"), ("eq", "/etc/shadow")]):
        ix.add(kind, literal, cid)
    assert ix.tail_len == 2 and ix.tails == {"ls", "nv", "rc", "on"}
    gate = eval(f"lambda v: {ix.gate_source('v', 'cg', 'pg', 'tails')}",          # noqa: S307
                {"cg": ix._cgate, "pg": ix._pgate, "tails": ix.tails})
    parts = ["/etc/cron", "/var/log/", ".aws/credentials", ".env", "rc", "/.git/hooks/", "/environ",
             "/home/u/", "x", "/etc/", ".bashrc", "o", "n"]
    values = ["".join(rnd.choice(parts) for _ in range(rnd.randint(1, 4))) for _ in range(2000)]
    for value in values:
        found: list[int] = []
        ix.walk(value, found)
        if found:
            assert gate(value), value
    assert not gate("/home/u/notes.txt") and not gate("/etc/shadow")     # exact values: a dict
    assert gate("/proc/1/environ") and gate("/home/u/.bashrc")
