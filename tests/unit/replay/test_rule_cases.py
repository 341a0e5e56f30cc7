"""`rules test`: the bundled corpus passes --strict, and the run fails when a rule is broken,
a fixture is missing, a known gap closes, or a case file is malformed (path:line)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coi_sentinel.replay.cases import bundled_cases_dir, load_suite, run_suite
from coi_sentinel.rules import bundled_dir

pytestmark = pytest.mark.unit
CASES = bundled_cases_dir()
TRACES = CASES / "traces"


def rule_row(stdout: str, rule: str) -> str:
    return next(line for line in stdout.splitlines() if line.split()[:1] == [rule])


def flat(text: str) -> str:
    """Output with line wrapping undone."""
    return " ".join(text.split())


def edit_rules(rules_dir: Path, filename: str, change) -> None:
    """Change an item of a rule file by its YAML structure (comments are lost in the copy)."""
    path = rules_dir / filename
    items = yaml.safe_load(path.read_text())
    changed = [change(item) for item in items]
    assert any(changed), f"nothing to change in {filename}: the rule file was reorganised"
    path.write_text(yaml.safe_dump(items, sort_keys=False))


def test_strict_passes_on_the_bundled_corpus_through_the_entry_point():
    res = subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", "rules", "test", "--strict"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^reverse_shell_socket_dup\s+\d+/\d+\s+\d+/\d+\s+pass$", res.stdout, re.M)
    assert "0 failed" in res.stderr and "(strict)" in res.stderr


def test_every_enabled_rule_has_a_positive_and_a_negative_case_or_a_waiver(ruleset):
    suite = load_suite([CASES])
    report = run_suite(suite, ruleset, strict=True)
    assert not report.diagnostics.errors, [str(d) for d in report.diagnostics]
    failed = {c.case.name: [str(p) for p in c.problems] for c in report.cases if not c.ok}
    assert not failed
    waived = {w.rule for w in suite.waivers}
    for rule in report.rules:
        if rule.rule in waived:
            assert rule.status == "waived", rule
        else:
            assert rule.status == "pass" and rule.positive and rule.negative, rule
    assert report.ok
    # the benign baseline raises nothing at all
    for case in report.cases:
        if case.case.name.startswith("benign_"):
            assert not case.fired, (case.case.name, dict(case.fired))


def test_a_rule_that_stops_firing_fails_its_positive_cases(coi, rules_copy):
    def never(item):
        if item.get("rule") == "shadow_file_read":
            item["condition"] += "\nand proc.name = no-such-program"
            return True
        return False

    edit_rules(rules_copy, "credentials.yaml", never)
    res = coi("rules", "test", "--strict", "--no-bundled", "--rules", rules_copy, CASES)
    assert res.exit_code == 1
    assert re.match(r"shadow_file_read\s+0/\d+\s+\d+/\d+\s+fail$", rule_row(res.stdout, "shadow_file_read"))
    assert "case cred_shadow: shadow_file_read fired 0 times, expected 2" in flat(res.stdout)
    others = [line for line in res.stdout.splitlines() if line.endswith(" fail")]
    assert others == [rule_row(res.stdout, "shadow_file_read")]


def test_a_rule_that_fires_too_often_fails_its_negative_case(coi, rules_copy):
    def nobody_uses_ssh(item):
        if item.get("list") == "ssh_key_users":
            item["items"] = []
            return True
        return False

    edit_rules(rules_copy, "credentials.yaml", nobody_uses_ssh)
    res = coi("rules", "test", "--no-bundled", "--rules", rules_copy, CASES)
    assert res.exit_code == 1
    assert re.match(r"ssh_private_key_read\s+(\d+)/\1\s+0/1\s+fail$", rule_row(res.stdout, "ssh_private_key_read"))
    assert ("case nearmiss_credentials: ssh_private_key_read fired once, on a negative case"
            in flat(res.stdout))


def test_a_missing_trace_fails_the_rules_it_covers(coi, corpus_copy):
    (corpus_copy / "traces" / "cred_shadow.jsonl.gz").unlink()
    res = coi("rules", "test", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    assert res.exit_code == 1
    assert re.search(r"^ERROR .*credentials\.yaml:\d+: case cred_shadow: trace .*cred_shadow\.jsonl\.gz "
                     r"not found$", res.stdout, re.M)
    assert rule_row(res.stdout, "shadow_file_read").endswith("fail")


def test_a_missing_case_fails_only_strict(coi, corpus_copy):
    (corpus_copy / "resource.yaml").unlink()
    strict = coi("rules", "test", "--strict", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    assert strict.exit_code == 1
    assert "fork_bomb has no positive case" in flat(strict.stdout)
    assert rule_row(strict.stdout, "fork_bomb").endswith("fail")
    lax = coi("rules", "test", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    assert lax.exit_code == 0, lax.stdout
    assert re.match(r"fork_bomb\s+-\s+1/1\s+pass$", rule_row(lax.stdout, "fork_bomb"))


def test_a_known_gap_that_closes_fails(tmp_path, ruleset):
    case = tmp_path / "gap.yaml"
    case.write_text(f"""\
- case: python_shell
  trace: {TRACES / 'revshell_python_dup2.jsonl.gz'}
  expect:
    reverse_shell_exec_socket_stdio: 1
  missed: [reverse_shell_socket_dup]
""")
    report = run_suite(load_suite([case]), ruleset)
    assert not report.ok
    (result,) = report.cases
    assert [str(p) for p in result.problems] == [
        f"{case}:5: case python_shell: reverse_shell_socket_dup fired 2 times, on a known gap: "
        "the gap is closed, move the rule to `expect`"]


def test_counts_ranges_and_the_session_of_a_case(tmp_path, ruleset):
    trace = TRACES / "net_private.jsonl.gz"
    case = tmp_path / "counts.yaml"
    case.write_text(f"""\
- case: at_least_one
  trace: {trace}
  session: {{network: restricted}}
  expect:
    private_network_connect_restricted: ">=1"
- case: two_or_three
  trace: {trace}
  session: {{network: restricted}}
  expect:
    private_network_connect_restricted: "2..3"
- case: no_session
  trace: {trace}
  expect:
    private_network_connect_restricted: 1
""")
    report = run_suite(load_suite([case]), ruleset)
    problems = {c.case.name: [p.message for p in c.problems] for c in report.cases}
    assert problems == {
        "at_least_one": [],
        "two_or_three": ["private_network_connect_restricted fired once, expected 2..3"],
        "no_session": ["private_network_connect_restricted fired 0 times, expected 1"],
    }


def test_case_file_errors_name_file_and_line(tmp_path, ruleset):
    path = tmp_path / "bad.yaml"
    lines = [
        "- case: a",                                  # 1
        "  trace: t.jsonl",                           # 2
        "  expect: none",                             # 3
        "- case: a",                                  # 4  duplicate
        "  trace: t.jsonl",                           # 5
        "  expect: none",                             # 6
        "- case: b",                                  # 7
        "  trace: t.jsonl",                           # 8
        "  expect:",                                  # 9
        "    no_such_rule: 1",                        # 10 (not checked: the case is invalid)
        "    shadow_file_read: many",                 # 11 bad count
        "  colour: red",                              # 12 unknown key
        "- case: c",                                  # 13 no expect
        "  trace: t.jsonl",                           # 14
        "- waive: fork_bomb",                         # 15 no reason
        "- case: d",                                  # 16
        "  trace: t.jsonl",                           # 17
        "  expect: {shadow_file_read: 0}",            # 18 zero count
        "  negative: shadow_file_read",               # 19 not a list
        "- case: e",                                  # 20
        "  trace: t.jsonl",                           # 21
        "  expect: {dotenv_file_read: 1}",            # 22
        "  expect: none",                             # 23 duplicate key
        "  negative: [no_such_rule_either]",          # 24 unknown rule
        "- just a string",                            # 25
    ]
    path.write_text("\n".join(lines) + "\n")
    suite = load_suite([path])
    run_suite(suite, ruleset)
    assert [str(d) for d in suite.diagnostics] == [
        f"{path}:23: error: duplicate key 'expect' (first at line 22)",
        f"{path}:4: error: duplicate case 'a' (first at {path}:1)",
        f"{path}:12: error: unknown key 'colour' (expected one of: case, description, trace, "
        "expect, negative, missed, session, family)",
        f"{path}:11: error: shadow_file_read: count 'many' is not N, \">=N\" or \"N..M\"",
        f"{path}:13: error: case c: `expect` is missing (rule ids and counts, or `none`)",
        f"{path}:15: error: waiver of fork_bomb: `reason` says why the rule cannot have a "
        "positive and a negative case",
        f"{path}:18: error: shadow_file_read: a count of 0 is written `negative: [shadow_file_read]`",
        f"{path}:19: error: `negative` is a list of rule ids",
        f"{path}:25: error: an item is a mapping with `case:` or `waive:`",
        f"{path}:24: error: case e: unknown rule 'no_such_rule_either'",
    ]


def test_json_output_has_cases_rules_and_a_summary(coi, corpus_copy):
    (corpus_copy / "traces" / "fork_bomb.jsonl.gz").unlink()
    res = coi("rules", "test", "--json", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    assert res.exit_code == 1
    records = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = {r["record"] for r in records}
    assert kinds == {"case", "rule", "family", "summary"}
    case = next(r for r in records if r["record"] == "case" and r["case"] == "fork_bomb")
    assert not case["ok"] and "not found" in case["error"]
    rule = next(r for r in records if r["record"] == "rule" and r["rule"] == "fork_bomb")
    assert rule["status"] == "fail" and rule["positive"]["passed"] == rule["positive"]["cases"] - 1
    summary = records[-1]
    assert summary["record"] == "summary" and summary["ok"] is False and summary["cases_failed"] == 1


def test_usage_errors(coi):
    assert coi("rules", "test", "--no-bundled").exit_code == 2
    assert coi("rules", "test", "/no/such/dir").exit_code == 2


def test_every_scenario_has_a_trace_and_every_trace_a_case(monkeypatch):
    """make_corpus.py, traces/ and the case files agree: nothing recorded is left unchecked and
    no case points at a trace the generator does not make. The agent-* traces are the driven
    runs of the real agents (incus tier, tests/incus/test_driven_agents.py), cases of
    agents.yaml."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", CASES / "make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_corpus", make_corpus)    # for its dataclasses
    spec.loader.exec_module(make_corpus)
    scenarios = {sc.name for sc in make_corpus.SCENARIOS}
    traces = {p.name.removesuffix(".jsonl.gz") for p in TRACES.glob("*.jsonl.gz")}
    cases = load_suite([CASES]).cases
    used = {c.trace.name.removesuffix(".jsonl.gz") for c in cases}
    agents = {c.trace.name.removesuffix(".jsonl.gz") for c in load_suite([CASES / "agents.yaml"]).cases}
    assert agents and all(name.startswith("agent-") for name in agents)
    # holdout.yaml's and holdout2.yaml's traces are recorded by tests/bpf/test_detection_holdout.py
    # and test_detection_holdout2.py instead
    held_out = {c.trace.name.removesuffix(".jsonl.gz") for c in cases
                if Path(c.source.path).name in ("holdout.yaml", "holdout2.yaml")}
    assert held_out and not held_out & scenarios
    assert traces - agents == scenarios | held_out
    assert used == traces


def test_detection_by_family_table_and_its_strict_gate(coi, corpus_copy):
    """The table counts an attack case as detected only when a rule of its own family fired;
    --strict fails on any alert on a benign case, even one the case file expects."""
    res = coi("rules", "test", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    assert res.exit_code == 0, res.stdout
    row = re.search(r"^total\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+(\d+)\s+(\d+)\s+(\d+)$", res.stdout, re.M)
    assert row, res.stdout
    attacks, detected, _, _, benign, alerts = (int(float(x)) for x in row.groups())
    assert attacks >= 40 and detected <= attacks and benign >= 6 and alerts == 0
    rate = re.search(r"^reverse_shell\s+\d+\s+\d+\s+([\d.]+)%", res.stdout, re.M)
    assert rate and float(rate.group(1)) >= 95.0
    # a benign case whose trace raises an alert: the case passes (it says so), the gate does not
    (corpus_copy / "benign_extra.yaml").write_text(
        "- case: benign_reads_a_key\n  family: benign\n  trace: traces/cred_ssh_key_cat.jsonl.gz\n"
        "  expect: {ssh_private_key_read: \">=1\"}\n")
    res = coi("rules", "test", "--json", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["benign_alerts"] >= 1 and summary["cases_failed"] == 0
    assert res.exit_code == 0                         # not strict: the cases themselves pass
    strict = coi("rules", "test", "--strict", "--no-bundled", "--rules", bundled_dir(), corpus_copy)
    assert strict.exit_code == 1 and "alerts on benign cases" in strict.stderr


def test_an_attack_caught_only_by_another_family_is_not_detected(tmp_path, ruleset):
    # the renamed miner is caught by a port rule of resource.yaml; filed as network it is a miss
    path = tmp_path / "network.yaml"
    path.write_text(f"- case: miner_as_network\n  trace: {TRACES / 'miner_renamed.jsonl.gz'}\n"
                    "  expect: {mining_pool_port_connect: 1}\n")
    report = run_suite(load_suite([path]), ruleset, strict=True)
    net = next(f for f in report.families if f.family == "network")
    assert (net.attacks, net.detected, net.undetected) == (1, 0, ["miner_as_network"])
    assert not report.detection_ok and not report.ok
