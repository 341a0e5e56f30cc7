"""Lint warnings, and the `coi-sentinel rules` commands through the real entry point."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from coi_sentinel.cli.main import main
from coi_sentinel.rules import bundled_dir

pytestmark = pytest.mark.unit


def warnings(rules: Any, *texts: str) -> list[str]:
    rules.count = 0         # r1.yaml...
    return rules.messages(*texts, level="warning")


def test_unused_list_and_macro(rules: Any, rule_yaml: Any) -> None:
    text = ("- list: spare\n  items: [a]\n- macro: spare_m\n  condition: proc.name in (inner)\n"
            "- list: inner\n  items: [b]\n" + rule_yaml("t", "proc.name = a"))
    assert warnings(rules, text) == [
        "r1.yaml:1: list 'spare' is not used by any rule or macro",
        "r1.yaml:5: list 'inner' is not used by any rule or macro",     # only used by an unused macro
        "r1.yaml:3: macro 'spare_m' is not used by any rule",
    ]


def test_rule_without_events(rules: Any) -> None:
    text = "- rule: t\n  description: d\n  severity: low\n  condition: proc.name = a\n  output: o\n" \
           "  tags: [T1059]\n  false_positives: none\n"
    assert warnings(rules, text) == [
        "r1.yaml:1: rule 't' has no 'events': it is tested on every event type",
        "r1.yaml:4: rule 't' applies to file_open but does not bound file.path: the kernel reports write opens and "
        "only the reads other rules ask for (add file.path startswith/endswith/= or file.name)"]


def test_field_without_a_value_for_the_rule_events(rules: Any, rule_yaml: Any) -> None:
    assert warnings(rules, rule_yaml("t", "'proc.name = a or net.dport = 22'")) == [
        "r1.yaml:5: field 'net.dport' has no value for exec events (rule 't'): the clause is always false"]
    assert warnings(rules, rule_yaml("t", "proc.name = a", output="%net.dip")) == [
        "r1.yaml:6: output field %net.dip has no value for exec events: it prints <NA>"]


def test_not_equal_on_a_list_valued_field(rules: Any, rule_yaml: Any) -> None:
    assert warnings(rules, rule_yaml("t", "'proc.aname != sshd'")) == [
        "r1.yaml:5: 'proc.aname != ...' is true when any value differs; write 'not proc.aname = ...' to mean "
        "that no value is equal"]


def test_list_name_compared_with_equal(rules: Any, rule_yaml: Any) -> None:
    text = "- list: shells\n  items: [bash]\n" + rule_yaml("t", "'proc.name = shells or proc.name in (shells)'")
    assert warnings(rules, text) == [
        "r1.yaml:7: 'shells' is a list name but '=' compares with the word itself; write 'in (shells)' to use the list"]


def test_missing_note_and_tag_and_key_order(rules: Any) -> None:
    text = "- rule: t\n  severity: low\n  description: d\n  events: [exec]\n  condition: proc.name = a\n" \
           "  output: o\n"
    assert warnings(rules, text) == [
        "r1.yaml:1: keys of rule 't' are not in the house order (rule, description, severity, events, condition, "
        "output)",
        "r1.yaml:1: rule 't' has no 'false_positives' note",
        "r1.yaml:1: rule 't' has no MITRE ATT&CK technique tag (like T1059.004)",
    ]


def test_file_open_rule_that_does_not_bound_the_path(rules: Any, rule_yaml: Any) -> None:
    assert warnings(rules, rule_yaml("t", "'file.path contains secret'", "[file_open]")) == [
        "r1.yaml:5: rule 't' applies to file_open but does not bound file.path: the kernel reports write opens and "
        "only the reads other rules ask for (add file.path startswith/endswith/= or file.name)"]
    # write-only conditions need no sensitive paths; nor do rules that bound the path
    assert warnings(rules, rule_yaml("t", "'file.is_write and file.path contains secret'", "[file_open]")) == []
    assert warnings(rules, rule_yaml("t", "'file.path contains a and file.path endswith .pem'", "[file_open]")) == []


def test_sensitive_path_selection(rules: Any, rule_yaml: Any) -> None:
    def sets(cond: str) -> tuple[list[str], list[str]]:
        rs = rules.load(rule_yaml("t", f"'{cond}'", "[file_open, exec]"))
        return rs.sensitive_prefixes(), rs.sensitive_suffixes()

    assert sets("file.path startswith (/etc/a, /etc/b)") == (["/etc/a", "/etc/b"], [])
    assert sets("file.path = /etc/shadow or file.name in (id_rsa)") == (["/etc/shadow"], ["id_rsa"])
    # and: the more selective side (longer literal); not: nothing
    assert sets("file.path startswith /proc/ and file.path endswith /environ") == ([], ["/environ"])
    assert sets("file.path endswith .pem and not file.path startswith /usr/") == ([], [".pem"])
    # a branch that only write opens or exec events satisfy needs nothing
    assert sets("file.is_write or file.path endswith .key") == ([], [".key"])
    assert sets("file.path endswith .key or proc.name = x") == ([], [])     # x reading anything: unbounded
    assert sets("(evt.type = exec and proc.name = x) or file.path endswith .key") == ([], [".key"])


def test_disabled_rules_add_no_sensitive_paths(rules: Any, rule_yaml: Any) -> None:
    rs = rules.load(rule_yaml("t", "'file.path startswith /etc/a'", "[file_open]", extra="enabled: false"))
    assert rs.sensitive_prefixes() == []


def run(capsys: Any, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_lint_bundled_is_clean(capsys: Any) -> None:
    code, out, err = run(capsys, "rules", "lint")
    assert code == 0
    assert out == ""
    assert err.startswith(f"0 error(s), 0 warning(s) in {_bundled_files()} file(s), ")


def test_cli_lint_reports_every_problem_and_exits_1(capsys: Any, rules: Any, rule_yaml: Any) -> None:
    path = rules.write(rule_yaml("a", "'proc.nmae = x'") + rule_yaml("b", "'file.path startwith /x'")
                       + "- list: spare\n  items: []\n")
    code, out, err = run(capsys, "rules", "lint", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:5: error: unknown field 'proc.nmae' (did you mean 'proc.name'?)",
        f"{path}:13: error: unknown operator 'startwith' (did you mean 'startswith'?)",
        f"{path}:17: warning: list 'spare' is not used by any rule or macro",
    ]
    assert f"2 error(s), 1 warning(s) in {_bundled_files() + 1} file(s)" in err


def _bundled_files() -> int:
    return len(list(bundled_dir().glob("*.yaml")))


def test_cli_lint_json_only_and_strict(capsys: Any, rules: Any, rule_yaml: Any) -> None:
    path = rules.write("- list: spare\n  items: []\n" + rule_yaml("a", "proc.name = x"))
    code, out, _ = run(capsys, "rules", "lint", "--only", "--json", str(path))
    assert code == 0
    report = orjson.loads(out)
    assert (report["files"], report["rules"], report["errors"], report["warnings"]) == ([str(path)], 1, 0, 1)
    assert report["diagnostics"] == [{"level": "warning", "path": str(path), "line": 1,
                                      "message": "list 'spare' is not used by any rule or macro"}]
    code, _, _ = run(capsys, "rules", "lint", "--only", "--strict", str(path))
    assert code == 1


def test_cli_lint_of_broken_yaml_is_one_line_not_a_traceback(capsys: Any, rules: Any) -> None:
    path = rules.write("- rule: [unclosed\n")
    code, out, err = run(capsys, "rules", "lint", "--only", str(path))
    assert code == 1
    assert out.startswith(f"{path}:2: error: invalid YAML: ")
    assert "Traceback" not in out + err


def test_cli_fields(capsys: Any) -> None:
    code, out, _ = run(capsys, "rules", "fields")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    assert any(line.startswith("proc.aname[n] ") for line in out.splitlines())
    code, out, _ = run(capsys, "rules", "fields", "net", "--json")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert {r["name"] for r in rows} >= {"net.dip", "net.dport", "net.bytes_out"}
    assert all(r["name"].startswith("net.") for r in rows)
    assert next(r for r in rows if r["name"] == "net.dip")["type"] == "address"
    code, _, err = run(capsys, "rules", "fields", "nope")
    assert code == 2 and "one of: evt, proc" in err


def test_docs_examples_load(rules: Any) -> None:
    """The YAML examples of docs/rules.md are valid: the rule file alone, the others beside the
    bundled rules (their rule ids renamed where they show a bundled rule)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "rules.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if b.startswith("- ")]
    assert len(blocks) >= 4
    first = rules.check(blocks[0])
    assert [str(d) for d in first.diagnostics if d.level == "error"] == []
    for block in blocks[1:]:
        if "append: true" not in block and "override:" not in block:
            block = re.sub(r"^- rule: (\w+)", r"- rule: doc_\1", block, flags=re.M)
        rs = rules.check(block, bundled=True)
        assert [str(d) for d in rs.diagnostics if d.level == "error"] == [], block
