"""Hostile rule input (issue 17): nesting, macro expansion, file size and backtracking regexes
are bounded; each gives one diagnostic line, never a traceback or a stall."""

from __future__ import annotations

import time
from typing import Any

import pytest

from coi_sentinel.errors import RuleSetInvalid
from coi_sentinel.rules import Engine
from coi_sentinel.rules.parser import MAX_DEPTH
from coi_sentinel.rules.resolve import MAX_NODES
from coi_sentinel.rules.yamlload import MAX_FILE_BYTES

pytestmark = pytest.mark.unit


def errors(rules: Any, text: str) -> list[str]:
    return rules.messages(text, level="error")


def test_5000_nested_parentheses_are_one_error(rules: Any, rule_yaml: Any) -> None:
    cond = "'" + "(" * 5000 + "proc.name = x" + ")" * 5000 + "'"
    assert errors(rules, rule_yaml("deep", cond)) == [
        f"r1.yaml:5: the condition nests deeper than {MAX_DEPTH} levels of parentheses and 'not'"]


def test_5000_nots_are_one_error(rules: Any, rule_yaml: Any) -> None:
    assert errors(rules, rule_yaml("nots", "not " * 5000 + "proc.name = x")) == [
        f"r1.yaml:5: the condition nests deeper than {MAX_DEPTH} levels of parentheses and 'not'"]


def test_nesting_up_to_the_bound_still_works(rules: Any, rule_yaml: Any, ev: Any) -> None:
    depth = MAX_DEPTH - 2       # with the rule's own wrapping, at the bound
    cond = "'" + "not (" * (depth // 2) + "proc.name = x" + ")" * (depth // 2) + "'"
    rs = rules.load(rule_yaml("ok", cond))
    alerts: list = []
    Engine(rs, on_alert=alerts.append).feed(ev.exec(10, "/bin/y"))
    assert [a.rule for a in alerts] == ["ok"]


def test_a_long_macro_chain_is_one_error(rules: Any, rule_yaml: Any) -> None:
    macros = "- macro: c0\n  condition: proc.name = x\n" + "".join(
        f"- macro: c{k}\n  condition: not c{k - 1}\n" for k in range(1, 3000))
    out = errors(rules, macros + rule_yaml("chain", "c2999"))
    assert len(out) == 1 and f"nests deeper than {MAX_DEPTH} levels with its macros inlined" in out[0]
    assert "(c2999 -> c2998 -> ... ->" in out[0]


def test_nesting_spread_over_macros_is_counted_whole(rules: Any, rule_yaml: Any) -> None:
    macros = "- macro: d0\n  condition: proc.name = x\n" + "".join(
        f"- macro: d{k}\n  condition: {'not ' * 30}d{k - 1}\n" for k in range(1, 6))
    out = errors(rules, macros + rule_yaml("spread", "d5"))
    assert len(out) == 1 and f"nests deeper than {MAX_DEPTH} levels with its macros inlined" in out[0]


def test_an_exponential_macro_expansion_is_refused_at_once(rules: Any, rule_yaml: Any) -> None:
    macros = "- macro: m0\n  condition: proc.name = x\n" + "".join(
        f"- macro: m{k}\n  condition: m{k - 1} or m{k - 1} or proc.name = y{k}\n" for k in range(1, 30))
    t0 = time.monotonic()
    out = errors(rules, macros + rule_yaml("bomb", "m29"))
    assert time.monotonic() - t0 < 2
    assert len(out) == 1 and out[0].startswith("r1.yaml:") and \
        f"clauses (at most {MAX_NODES}) with its macros inlined" in out[0]


def test_an_oversized_rule_file_is_refused_without_parsing(rules: Any, tmp_path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.write(b"- list: x\n  items: [" + b"a," * (MAX_FILE_BYTES // 2) + b"a]\n")
    from coi_sentinel.rules import check_ruleset

    t0 = time.monotonic()
    rs = check_ruleset([path], replace_bundled=True)
    assert time.monotonic() - t0 < 2
    assert [str(d) for d in rs.diagnostics] == [
        f"{path}:1: error: the file is larger than {MAX_FILE_BYTES // 1024} KiB, the limit for a "
        "rule file: split it"]


def test_a_backtracking_regex_costs_microseconds_per_event(rules: Any, rule_yaml: Any, ev: Any) -> None:
    """`(a+)+$` took 5.9 s per event on 26 characters with Python's re; RE2 is linear."""
    rs = rules.load(rule_yaml("bt", "\"proc.cmdline regex '(a+)+$'\""))
    alerts: list = []
    eng = Engine(rs, on_alert=alerts.append)
    evil = ev.exec(10, "/bin/x", "x", "a" * 26 + "!")
    t0 = time.monotonic()
    for _ in range(100):
        eng.feed(evil)
    assert time.monotonic() - t0 < 1.0 and alerts == []
    eng.feed(ev.exec(11, "/bin/x", "x", "aaaa"))
    assert [a.rule for a in alerts] == ["bt"]


@pytest.mark.parametrize("pattern", ["(?=x)y", "(a)\\\\1", "(?<!a)b"])
def test_regexes_that_need_backtracking_are_lint_errors(rules: Any, rule_yaml: Any, pattern: str) -> None:
    out = errors(rules, rule_yaml("bt", f"\"proc.cmdline regex '{pattern}'\""))
    assert len(out) == 1 and "rules use RE2, a linear-time engine" in out[0], out


def test_load_ruleset_raises_one_line(rules: Any, rule_yaml: Any) -> None:
    with pytest.raises(RuleSetInvalid) as info:
        rules.load(rule_yaml("deep", "'" + "(" * 500 + "proc.name = x" + ")" * 500 + "'"))
    assert "\n" not in str(info.value) and str(info.value).startswith(str(rules.root / "r1.yaml") + ":5: ")
