"""append / override / enabled across files, and exceptions."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.unit


def fired(rules: Any, run: Any, ev: Any, *texts: str, events: tuple = ()) -> list[str]:
    r = run(rules.load(*texts))
    return r.feed(*events)


def test_list_append_and_replace(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    base = "- list: names\n  items: [a]\n" + rule_yaml("t", "'proc.name in (names)'")
    r = run(rules.load(base, "- list: names\n  items: [b]\n  append: true\n"))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/b"), ev.exec(1, "/x/c")) == ["t", "t"]
    r = run(rules.load(base, "- list: names\n  items: [c]\n  override: {items: replace}\n"))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/b"), ev.exec(1, "/x/c")) == ["t"]
    assert r.alerts[0].process.name == "c"


def test_macro_append_continues_the_parenthesised_original(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    base = "- macro: m\n  condition: proc.name = a or proc.name = b\n" + rule_yaml("t", "m")
    r = run(rules.load(base, "- macro: m\n  condition: and user.uid = 0\n  append: true\n"))
    # (a or b) and uid 0 - not a or (b and uid 0)
    assert r.feed(ev.exec(1, "/x/a", uid=1000), ev.exec(1, "/x/b", uid=0), ev.exec(1, "/x/a", uid=0)) == ["t", "t"]
    assert [a.events[0].filename for a in r.alerts] == ["/x/b", "/x/a"]


def test_macro_replace(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    base = "- macro: m\n  condition: proc.name = a\n" + rule_yaml("t", "m")
    r = run(rules.load(base, "- macro: m\n  condition: proc.name = z\n  override: {condition: replace}\n"))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/z")) == ["t"]


def test_rule_condition_append_and_replace(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    base = rule_yaml("t", "'proc.name in (a, b)'")
    r = run(rules.load(base, "- rule: t\n  append: true\n  condition: and not proc.name = b\n"))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/b")) == ["t"]
    r = run(rules.load(base, "- rule: t\n  override: {condition: replace}\n  condition: proc.name = c\n"))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/c")) == ["t"]
    assert r.engine.ruleset.rule("t").rule.condition[0].text == "proc.name = c"


def test_appended_condition_in_the_same_file(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(rule_yaml("t", "proc.is_shell") + "- rule: t\n  append: true\n  condition: or proc.name = z\n"))
    assert r.feed(ev.exec(1, "/bin/sh"), ev.exec(1, "/x/z"), ev.exec(1, "/x/y")) == ["t", "t"]


def test_rule_override_of_scalar_keys(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    base = rule_yaml("t", "proc.name = a")
    change = """\
- rule: t
  override:
    severity: replace
    output: replace
    action: replace
    tags: append
    events: append
    description: replace
    false_positives: replace
  description: changed
  severity: critical
  events: [connect]
  output: "changed %proc.pid"
  tags: [mine]
  action: kill
  false_positives: my note
"""
    rs = rules.load(base, change)
    rule = rs.rule("t").rule
    assert (rule.severity.label, rule.output, rule.action, rule.tags, rule.description, rule.false_positives) == (
        "critical", "changed %proc.pid", "kill", ("T1059", "mine"), "changed", "my note")
    assert [e.label for e in rule.events] == ["exec", "connect"]
    r = run(rs)
    assert r.feed(ev.exec(7, "/x/a")) == ["t"]
    assert (r.alerts[0].output, r.alerts[0].action, r.alerts[0].severity.label) == ("changed 7", "kill", "critical")


def test_enabled_toggle(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    base = rule_yaml("t", "proc.name = a") + rule_yaml("u", "proc.name = a", extra="enabled: false")
    rs = rules.load(base)
    assert rs.rule_ids == ["t"] and "u" in rs
    r = run(rules.load(base, "- rule: t\n  enabled: false\n- rule: u\n  enabled: true\n"))
    assert r.feed(ev.exec(1, "/x/a")) == ["u"]


def test_exceptions_silence_matching_tuples(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    extra = """\
exceptions:
  - name: known
    fields: [proc.name, user.uid]
    comps: [=, in]
    values:
      - [a, [0, 1]]
      - [b, [2]]
  - name: single
    fields: [proc.exe]
    values: [/opt/c]
"""
    r = run(rules.load(rule_yaml("t", "proc.name in (a, b, c)", extra=extra)))
    got = r.feed(ev.exec(1, "/x/a", uid=0), ev.exec(1, "/x/a", uid=5), ev.exec(1, "/x/b", uid=2),
                 ev.exec(1, "/x/b", uid=0), ev.exec(1, "/opt/c"), ev.exec(1, "/usr/c"))
    assert got == ["t", "t", "t"]
    assert [(a.process.exe, a.process.uid) for a in r.alerts] == [("/x/a", 5), ("/x/b", 0), ("/usr/c", 1000)]


def test_exception_comps_with_string_operators_and_list_names(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    extra = """\
exceptions:
  - name: tools
    fields: [proc.exe, proc.cmdline]
    comps: [startswith, contains]
    values:
      - [/opt/, --safe]
  - name: listed
    fields: [proc.name]
    comps: [in]
    values: [trusted]
"""
    text = "- list: trusted\n  items: [t1, t2]\n" + rule_yaml("t", "proc.exe exists", extra=extra)
    r = run(rules.load(text))
    got = r.feed(ev.exec(1, "/opt/x", "x", "--safe"), ev.exec(1, "/opt/x", "x"), ev.exec(1, "/bin/t2"),
                 ev.exec(1, "/bin/t3"))
    assert got == ["t", "t"]
    assert [a.process.cmdline for a in r.alerts] == ["x", "t3"]


def test_exception_values_appended_from_another_file(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    extra = "exceptions:\n  - name: known\n    fields: [proc.name]\n    values: [a]\n"
    base = rule_yaml("t", "proc.name in (a, b, c, d)", extra=extra)
    change = """\
- rule: t
  append: true
  exceptions:
    - name: known
      values: [b]
    - name: extra
      fields: [proc.name, user.uid]
      values: [[c, 0]]
"""
    r = run(rules.load(base, change))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/b"), ev.exec(1, "/x/c", uid=0), ev.exec(1, "/x/c"),
                  ev.exec(1, "/x/d")) == ["t", "t"]


def test_exceptions_replaced(rules: Any, rule_yaml: Any, run: Any, ev: Any) -> None:
    extra = "exceptions:\n  - name: known\n    fields: [proc.name]\n    values: [a]\n"
    base = rule_yaml("t", "proc.name in (a, b)", extra=extra)
    change = ("- rule: t\n  override: {exceptions: replace}\n  exceptions:\n    - name: other\n"
              "      fields: [proc.name]\n      values: [b]\n")
    r = run(rules.load(base, change))
    assert r.feed(ev.exec(1, "/x/a"), ev.exec(1, "/x/b")) == ["t"]


def test_user_file_changes_a_bundled_rule(rules: Any, run: Any, ev: Any) -> None:
    change = "- rule: exec_from_dev_shm\n  append: true\n  condition: and not proc.name = ok\n"
    r = run(rules.load(change, bundled=True))
    assert r.feed(ev.exec(1, "/dev/shm/ok"), ev.exec(1, "/dev/shm/evil")) == ["exec_from_dev_shm"]
    rs = rules.load(change, bundled=True)
    parts = rs.rule("exec_from_dev_shm").rule.condition
    assert [p.source.path.rsplit("/", 1)[-1] for p in parts] == ["execution.yaml", "r2.yaml"]
