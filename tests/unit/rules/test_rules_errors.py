"""Every error a rule file can have, with the exact message and its path:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coi_sentinel.errors import RuleError, RuleSetInvalid
from coi_sentinel.rules import check_ruleset, load_ruleset

pytestmark = pytest.mark.unit

STRING_OPS = ("!=, =, bcontains, bstartswith, contains, endswith, exists, glob, icontains, iglob, in, "
              "intersects, pmatch, regex, startswith")

RULE = """\
- rule: r
  description: d
  severity: high
  events: [exec]
  condition: proc.name = x
  output: o
  tags: [T1059]
  false_positives: none
"""


def errors(rules: Any, text: str) -> list[str]:
    rules.count = 0         # always r1.yaml
    return rules.messages(text, level="error")


@pytest.mark.parametrize("text, expected", [
    # ---- file and item structure
    ("rule: x\n", "r1.yaml:1: a rule file must be a YAML list of items (- rule: ..., - list: ..., - macro: ...)"),
    ("- just text\n", "r1.yaml:1: an item must be a mapping starting with rule:, list:, macro: or "
                      "required_engine_version:"),
    ("- {}\n", "r1.yaml:1: an item must be a mapping starting with rule:, list:, macro: or required_engine_version:"),
    ("- rul: x\n", "r1.yaml:1: unknown item 'rul' (did you mean 'rule'?): an item starts with rule:, list:, "
                   "macro: or required_engine_version:"),
    ("- required_engine_version: 2\n", "r1.yaml:1: the file needs rule engine version 2; this is 1.0.0"),
    ("- required_engine_version: 1.1\n", "r1.yaml:1: the file needs rule engine version 1.1; this is 1.0.0"),
    ("- required_engine_version: one\n", "r1.yaml:1: required_engine_version must be a version like 1 or "
                                         "1.0.0, not 'one'"),
    ("- required_engine_version: 1\n  rule: x\n", "r1.yaml:2: unknown key 'rule' in required_engine_version"),
    # ---- lists
    ("- list: 1bad\n  items: []\n", "r1.yaml:1: list name '1bad' must be letters, digits and '_' (not starting "
                                     "with a digit)"),
    ("- list: l\n  items: x\n", "r1.yaml:2: 'items' of list 'l' must be a YAML list"),
    ("- list: l\n  items:\n    - a\n    - true\n", "r1.yaml:4: item True of list 'l' must be text or a whole "
                                                   "number (quote it)"),
    ("- list: l\n  items: [a, {b: 1}]\n", "r1.yaml:2: item {'b': 1} of list 'l' must be text or a whole number"),
    ("- list: l\n", "r1.yaml:1: list 'l' has no 'items'"),
    ("- list: l\n  itemz: []\n", "r1.yaml:2: unknown key 'itemz' in list 'l' (did you mean 'items'?)"),
    # ---- macros
    ("- macro: m\n", "r1.yaml:1: macro 'm' has no 'condition'"),
    ("- macro: m\n  condition: ''\n", "r1.yaml:2: 'condition' of macro 'm' is empty"),
    ("- macro: m-x\n  condition: a\n", "r1.yaml:1: macro name 'm-x' must be letters, digits and '_' (not "
                                       "starting with a digit)"),
    # ---- rule keys and values
    (RULE.replace("  severity: high\n", "  sevrity: high\n"),
     "r1.yaml:3: unknown key 'sevrity' in rule 'r' (did you mean 'severity'?)"),
    (RULE.replace("- rule: r\n", "- rule: Bad Name\n"),
     "r1.yaml:1: rule id 'Bad Name' must be lower case letters, digits, '_', '-' or '.'"),
    (RULE.replace("  description: d\n", ""), "r1.yaml:1: rule 'r' has no 'description'"),
    (RULE.replace("  output: o\n", ""), "r1.yaml:1: rule 'r' has no 'output'"),
    (RULE.replace("  condition: proc.name = x\n", ""), "r1.yaml:1: rule 'r' has no 'condition'"),
    (RULE.replace("  output: o\n", "  output: [o]\n"), "r1.yaml:6: 'output' of rule 'r' must be text"),
    (RULE.replace("severity: high", "severity: severe"),
     "r1.yaml:3: unknown severity 'severe' (one of: info, low, medium, high, critical; or a Falco priority)"),
    (RULE.replace("severity: high", "severity: hihg"),
     "r1.yaml:3: unknown severity 'hihg' (did you mean 'high'?) (one of: info, low, medium, high, critical; "
     "or a Falco priority)"),
    (RULE.replace("events: [exec]", "events: [exce]"),
     "r1.yaml:4: unknown event type 'exce' (did you mean 'exec'?) (one of: exec, fork, exit, connect, dup, "
     "net_send, file_open, file_write, rename, unlink, chmod, priv, connect_repeat)"),
    (RULE.replace("events: [exec]", "events: [1]"), "r1.yaml:4: 'events' of rule 'r' must be a list of names"),
    (RULE + "  action: nuke\n", "r1.yaml:9: unknown action 'nuke' (one of: alert, pause, kill, kill-process, block)"),
    (RULE + "  enabled: maybe\n", "r1.yaml:9: 'enabled' of rule 'r' must be true or false"),
    (RULE.replace("  tags: [T1059]\n", "  tags: [1, 2]\n"), "r1.yaml:7: 'tags' of rule 'r' must be a list of names"),
    # ---- sequence
    (RULE + "  sequence: {scope: tree, window: 1s, steps: []}\n",
     "r1.yaml:5: sequence rule 'r' has its conditions in its steps, not in 'condition'"),
    (RULE.replace("  condition: proc.name = x\n", "") + "  sequence: x\n",
     "r1.yaml:4: sequence rule 'r' has its event types in its steps, not in 'events'"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "") + "  sequence: x\n",
     "r1.yaml:7: 'sequence' of rule 'r' must be a mapping"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: branch, window: 1s}\n",
     "r1.yaml:7: unknown scope 'branch' (one of: process, tree, container)"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, steps: []}\n", "r1.yaml:7: the sequence of rule 'r' has no 'window'"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, window: 30, steps: []}\n",
     "r1.yaml:7: window of the sequence of rule 'r': 30 is not a duration (write e.g. 500ms, 30s, 5m)"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, window: 0s, steps: []}\n",
     "r1.yaml:7: window of the sequence of rule 'r': '0s': a duration must be positive"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, window: 1s, steps: [{events: [exec], condition: a}]}\n",
     "r1.yaml:7: sequence of rule 'r' needs a list of at least 2 steps"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, window: 1s, steps: [x, y]}\n", "r1.yaml:7: step 1 of rule 'r' must be a mapping"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence:\n    scope: tree\n    window: 1s\n    steps:\n      - condition: a\n      - events: [exec]\n"
       "        condition: b\n", "r1.yaml:11: step 1 of rule 'r' has no 'events'"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence:\n    scope: tree\n    window: 1s\n    steps:\n"
       "      - {events: [exec], condition: a, by: [proc.name]}\n"
       "      - {events: [exec], condition: b}\n",
     "r1.yaml:11: every step of rule 'r' must have the same number of 'by' fields"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, window: 1s, stepz: []}\n",
     "r1.yaml:7: unknown key 'stepz' in the sequence of rule 'r' (did you mean 'steps'?)"),
    (RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "")
     + "  sequence: {scope: tree, window: 1s, steps: [{events: [exec], condition: a, when: b}, "
       "{events: [exec], condition: b}]}\n", "r1.yaml:7: unknown key 'when' in step 1 of rule 'r'"),
    # ---- threshold
    (RULE + "  threshold: {window: 1s}\n", "r1.yaml:9: the threshold of rule 'r' has no 'above'"),
    (RULE + "  threshold: {above: 3}\n", "r1.yaml:9: the threshold of rule 'r' has no 'window'"),
    (RULE + "  threshold: {window: 1s, above: lots}\n",
     "r1.yaml:9: 'above' of the threshold of rule 'r': 'lots' is not a number"),
    (RULE + "  threshold: {window: 1s, above: -1}\n", "r1.yaml:9: 'above' of the threshold of rule 'r' must not "
                                                      "be negative"),
    (RULE + "  threshold: {window: 1s, above: 1}\n  sequence: {}\n", "r1.yaml:9: rule 'r' has both 'sequence' "
                                                                   "and 'threshold'"),
    # ---- exceptions
    (RULE + "  exceptions: x\n", "r1.yaml:9: 'exceptions' of rule 'r' must be a list"),
    (RULE + "  exceptions: [x]\n", "r1.yaml:9: exception 1 of rule 'r' must be a mapping"),
    (RULE + "  exceptions:\n    - fields: [proc.name]\n", "r1.yaml:10: exception 1 of rule 'r' has no 'name'"),
    (RULE + "  exceptions:\n    - name: e\n", "r1.yaml:10: exception 'e' of rule 'r' has no 'fields'"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name]\n      vals: []\n",
     "r1.yaml:12: unknown key 'vals' in exception 1 of rule 'r' (did you mean 'values'?)"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name, proc.pid]\n      comps: [=]\n",
     "r1.yaml:12: exception 'e' of rule 'r' has 1 comps for 2 fields"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name]\n      comps: [like]\n",
     "r1.yaml:12: unknown comparison 'like' in exception 'e' of rule 'r'"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name]\n      values: x\n",
     "r1.yaml:12: 'values' of exception 'e' of rule 'r' must be a list"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name]\n    - name: e\n      fields: [proc.name]\n",
     "r1.yaml:12: rule 'r' has two exceptions named 'e'"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name, proc.pid]\n      values: [[a, 1], [b]]\n",
     "r1.yaml:10: exception 'e' of rule 'r': the entry [b] does not give one value for each of 2 fields "
     "['proc.name', 'proc.pid']"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.nam]\n      values: [a]\n",
     "r1.yaml:10: unknown field 'proc.nam' (did you mean 'proc.name'?)"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.pid]\n      values: [abc]\n",
     "r1.yaml:10: proc.pid =: 'abc' is not a number"),
    # ---- output
    (RULE.replace("output: o", "output: 'x %proc.nmae'"),
     "r1.yaml:6: unknown field '%proc.nmae' in output (did you mean 'proc.name'?)"),
    (RULE.replace("output: o", "output: 'x %threshold.value'"),
     "r1.yaml:6: output uses %threshold.value but the rule has no threshold"),
    (RULE.replace("output: o", "output: 'x %proc.name[1]'"), "r1.yaml:6: field 'proc.name' in output takes no index"),
])
def test_structure_errors(rules: Any, text: str, expected: str) -> None:
    assert expected in errors(rules, text), errors(rules, text)


def cond_rule(condition: str, events: str = "[exec]") -> str:
    return RULE.replace("  condition: proc.name = x\n", f"  condition: {condition}\n").replace("[exec]", events)


@pytest.mark.parametrize("condition, expected", [
    ("'proc.name startwith x'", "unknown operator 'startwith' (did you mean 'startswith'?)"),
    ("'proc.name = x and'", "the condition ends where a clause is expected"),
    ("'proc.nmae = x'", "unknown field 'proc.nmae' (did you mean 'proc.name'?)"),
    ("'prc.name = x'", "unknown field 'prc.name' (did you mean 'proc.name'?)"),
    ("'proc.name[2] = x'", "field 'proc.name' takes no index"),
    ("shell_procz", "unknown macro 'shell_procz' (did you mean 'shell_procs'?)"),
    ("proc.is_shel", "unknown field 'proc.is_shel' (did you mean 'proc.is_shell'?)"),
    ("proc.name", "field 'proc.name' is not a boolean: compare it with an operator"),
    ("'proc.name > 3'", "operator '>' does not apply to proc.name, a string field (it takes: " + STRING_OPS + ")"),
    ("'proc.pid contains 3'", "operator 'contains' does not apply to proc.pid, a number field (it takes: !=, <, "
                              "<=, =, >, >=, exists, in, intersects)"),
    ("'proc.name cidr 10.0.0.0/8'", "operator 'cidr' does not apply to proc.name, a string field (it takes: "
                                    + STRING_OPS + ")"),
    ("'proc.name in x'", "'in' takes a list: proc.name in (a, b) or proc.name in list_name"),
    ("'proc.name contains ()'", "'contains' needs at least one value"),
    ("'proc.name contains \"\"'", "proc.name contains: 'contains' with an empty value is always true"),
    ("'proc.pid = abc'", "proc.pid =: 'abc' is not a number"),
    ("'proc.pid in (1, x)'", "proc.pid in: 'x' is not a number"),
    ("'proc.is_shell = yes'", "proc.is_shell =: 'yes' is not true or false"),
    ("'net.dip = 10.0.0'", "net.dip =: '10.0.0' is not an IP address (use cidr for ranges)"),
    ("'net.dip cidr (10.0.0.0/33)'", "net.dip cidr: '10.0.0.0/33' is not an address or a CIDR range"),
    ("'proc.name regex \"a(\"'", "bad regular expression 'a(' for proc.name: missing ), unterminated subpattern "
                                 "at position 1"),
])
def test_condition_errors_name_the_line_of_the_clause(rules: Any, condition: str, expected: str) -> None:
    events = "[connect]" if "net." in condition else "[exec]"
    assert f"r1.yaml:5: {expected}" in errors(rules, cond_rule(condition, events))


def test_error_in_a_multi_line_condition_points_at_its_line(rules: Any) -> None:
    text = RULE.replace("  condition: proc.name = x\n",
                        "  condition: >\n    proc.name = x\n    and proc.pid > 3\n    and file.path startwith /x\n")
    assert errors(rules, text) == ["r1.yaml:8: unknown operator 'startwith' (did you mean 'startswith'?)"]
    text = RULE.replace("  condition: proc.name = x\n",
                        "  condition: |\n    proc.name = x\n    and proc.nmae = y\n")
    assert errors(rules, text) == ["r1.yaml:7: unknown field 'proc.nmae' (did you mean 'proc.name'?)"]


def test_all_errors_of_a_file_are_reported(rules: Any) -> None:
    text = (cond_rule("'proc.nmae = x'").replace("rule: r", "rule: a")
            + cond_rule("'proc.pid = x'").replace("rule: r", "rule: b")
            + "- list: l\n  items: x\n")
    assert errors(rules, text) == [
        "r1.yaml:18: 'items' of list 'l' must be a YAML list",
        "r1.yaml:5: unknown field 'proc.nmae' (did you mean 'proc.name'?)",
        "r1.yaml:13: proc.pid =: 'x' is not a number",
    ]


def test_errors_inside_macros_point_at_the_macro(rules: Any) -> None:
    text = "- macro: m\n  condition: >\n    proc.name = a\n    or proc.nmae = b\n" + cond_rule("m")
    assert errors(rules, text) == ["r1.yaml:4: unknown field 'proc.nmae' (did you mean 'proc.name'?)"]


def test_macro_and_list_cycles(rules: Any) -> None:
    text = "- macro: a\n  condition: b\n- macro: b\n  condition: a\n" + cond_rule("a")
    assert "r1.yaml:4: macro cycle: a -> b -> a" in errors(rules, text)
    text = "- list: x\n  items: [y]\n- list: y\n  items: [x]\n" + cond_rule("'proc.name in (x)'")
    assert "r1.yaml:1: list cycle: x -> y -> x" in errors(rules, text)


def test_rule_that_can_never_fire(rules: Any) -> None:
    assert errors(rules, cond_rule("'net.dport = 22'")) == [
        "r1.yaml:5: rule 'r' can never fire: its condition is false for every event type it applies to (exec)"]
    assert errors(rules, cond_rule("'proc.name in ()'")) == [
        "r1.yaml:5: rule 'r' can never fire: its condition is false for every event type it applies to (exec)"]


def test_threshold_field_errors(rules: Any) -> None:
    text = RULE + "  threshold: {window: 1s, above: 1, sum: proc.name}\n"
    assert errors(rules, text) == ["r1.yaml:9: threshold of rule 'r' sums 'proc.name', which is not a number field"]
    text = RULE + "  threshold: {window: 1s, above: 1, by: [proc.aname]}\n"
    assert errors(rules, text) == ["r1.yaml:9: the threshold of rule 'r': 'proc.aname' is a list of values and "
                                   "cannot be a key"]
    text = RULE + "  threshold: {window: 1s, above: 1, by: [proc.nope]}\n"
    assert errors(rules, text) == ["r1.yaml:9: unknown field 'proc.nope' (did you mean 'proc.pexe'?)"]


def test_sensitive_path_limits(rules: Any) -> None:
    long = "/x" * 130
    text = cond_rule(f"'file.path startswith {long}'", "[file_open]")
    assert errors(rules, text) == [f"r1.yaml:5: sensitive path '{long}' of rule 'r' must be 1 to 255 bytes"]
    items = ", ".join(f"/p{i}" for i in range(1025))
    text = f"- list: many\n  items: [{items}]\n" + cond_rule("'file.path in (many)'", "[file_open]")
    assert errors(rules, text) == ["r1.yaml:3: the rules need 1025 sensitive path prefixes; the kernel holds 1024"]


@pytest.mark.parametrize("first, second, expected", [
    (RULE, RULE, "r2.yaml:1: duplicate rule id 'r' (first defined at {dir}/r1.yaml:1); to change it use "
                 "'append: true' or 'override:'"),
    ("- list: l\n  items: []\n", "- list: l\n  items: [a]\n",
     "r2.yaml:1: duplicate list name 'l' (first defined at {dir}/r1.yaml:1); to change it use 'append: true' or "
     "'override:'"),
    ("- macro: m\n  condition: a\n", "- macro: m\n  condition: b\n",
     "r2.yaml:1: duplicate macro name 'm' (first defined at {dir}/r1.yaml:1); to change it use 'append: true' or "
     "'override:'"),
    (RULE, "- rule: nope\n  enabled: false\n",
     "r2.yaml:1: cannot change rule 'nope': it is not defined in this file above or in an earlier file"),
    (RULE, "- list: nope\n  items: [a]\n  append: true\n",
     "r2.yaml:1: cannot change list 'nope': it is not defined in this file above or in an earlier file"),
    (RULE, "- rule: r\n  append: true\n  exceptions:\n    - name: e\n      values: [a]\n",
     "r2.yaml:4: rule 'r' has no exception 'e' to add values to; a new exception needs 'fields'"),
    (RULE + "  exceptions:\n    - name: e\n      fields: [proc.name]\n",
     "- rule: r\n  append: true\n  exceptions:\n    - name: e\n      fields: [proc.pid]\n      values: [1]\n",
     "r2.yaml:4: exception 'e' of rule 'r' has fields ['proc.name'] ['='] (defined at {dir}/r1.yaml:10); "
     "appended values must use the same or give no 'fields'"),
    (RULE, "- rule: r\n  append: true\n  severity: low\n",
     "r2.yaml:1: 'severity' cannot be appended (can be: condition, events, exceptions, tags)"),
    (RULE, "- rule: r\n  append: true\n", "r2.yaml:1: 'append: true' with nothing to append to rule 'r'"),
    (RULE, "- rule: r\n  append: true\n  override: {condition: append}\n  condition: and x\n",
     "r2.yaml:3: use either 'append: true' or 'override:', not both"),
    (RULE, "- rule: r\n  override: x\n  condition: and x\n",
     "r2.yaml:2: 'override' must map keys to append or replace"),
    (RULE, "- rule: r\n  override: {condition: merge}\n  condition: and x\n",
     "r2.yaml:2: override of 'condition' must be append or replace, not 'merge'"),
    (RULE, "- rule: r\n  override: {output: append}\n  output: x\n",
     "r2.yaml:2: 'output' cannot be appended (can be: condition, events, exceptions, tags)"),
    (RULE, "- rule: r\n  override: {sequence: replace}\n  sequence: x\n",
     "r2.yaml:2: 'sequence' cannot be replaced (can be: title, description, severity, events, condition, output, "
     "exceptions, tags, references, action, false_positives, enabled)"),
    (RULE, "- rule: r\n  override: {condition: append}\n", "r2.yaml:2: override names 'condition' but the item "
                                                            "gives no 'condition'"),
    (RULE, "- rule: r\n  override: {condition: append}\n  condition: and x\n  severity: low\n",
     "r2.yaml:1: 'severity' is given but not named in 'override' (add severity: replace or severity: append)"),
    (RULE, "- rule: r\n  append: true\n  condition: not x\n",
     "r2.yaml:3: an appended condition must start with 'and' or 'or'"),
    (RULE, "- rule: r\n  append: true\n  condition: and proc.nmae = y\n",
     "r2.yaml:3: unknown field 'proc.nmae' (did you mean 'proc.name'?)"),
])
def test_merge_errors_name_both_places(rules: Any, first: str, second: str, expected: str) -> None:
    got = rules.messages(first, second, level="error")
    assert expected.format(dir=rules.root) in [g.replace(f"{rules.root}/", "{dir}/").format(dir=rules.root)
                                               for g in got], got


def test_sequence_cannot_be_changed(rules: Any) -> None:
    seq = RULE.replace("  condition: proc.name = x\n", "").replace("  events: [exec]\n", "") + """\
  sequence:
    scope: process
    window: 1s
    steps:
      - {events: [exec], condition: proc.name = a}
      - {events: [exec], condition: proc.name = b}
"""
    got = rules.messages(seq, "- rule: r\n  append: true\n  condition: and x\n", level="error")
    assert got == ["r2.yaml:1: rule 'r' is a sequence: its conditions are in its steps and cannot be changed; "
                   "disable it and write a new rule"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    rs = check_ruleset([tmp_path / "nope.yaml"], replace_bundled=True)
    assert [str(d) for d in rs.diagnostics] == [f"{tmp_path}/nope.yaml:1: error: no such rule file or directory"]


def test_load_raises_one_rule_error_with_path_line_and_all_errors(rules: Any) -> None:
    path = rules.write(cond_rule("'proc.nmae = x'") + "- list: l\n  items: x\n")
    with pytest.raises(RuleSetInvalid) as info:
        load_ruleset([path], replace_bundled=True)
    err = info.value
    assert isinstance(err, RuleError)
    assert (err.path, err.line) == (str(path), 10)
    assert str(err) == (f"{path}:10: 'items' of list 'l' must be a YAML list (and 1 more; run 'coi-sentinel rules "
                        f"lint' for all)")
    assert len(err.diagnostics) == 2


def test_recursive_or_deep_yaml_is_an_error_not_a_crash(rules: Any) -> None:
    assert errors(rules, "- &a [*a]\n") == ["r1.yaml:1: invalid YAML: found unconstructable recursive node"]
    assert errors(rules, "[" * 5000 + "]" * 5000 + "\n") == ["r1.yaml:1: YAML nesting is too deep"]
