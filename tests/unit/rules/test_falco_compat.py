"""Falco rule files load beside ours: tests/fixtures/falco/agent_rules.yaml (Falco's keys, names
with spaces, lists, macros, exceptions, append, override, Falco's fields and operators, the
standard macros of rules/compat/falco.yaml) lints clean and its rules fire on the recorded
corpus; what we cannot do is one line naming it and what to use."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coi_sentinel.audit import severity
from coi_sentinel.cli.main import cli
from coi_sentinel.replay import replay
from coi_sentinel.rules import Severity, load_ruleset
from coi_sentinel.rules.lint import lint
from coi_sentinel.rules.loader import bundled_dir, compat_dir
from coi_sentinel.rules.diagnostics import Diagnostics
from coi_sentinel.rules.yamlload import load_file

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
FALCO = ROOT / "tests" / "fixtures" / "falco" / "agent_rules.yaml"
TRACES = bundled_dir() / "tests" / "traces"

#: trace -> alerts the Falco file must raise there (every enabled rule at least once)
EXPECTED: dict[str, dict[str, int]] = {
    "cred_ssh_key_cat": {"read_ssh_private_key_by_untrusted_program": 1},
    "exfil_ssh_key_python": {"read_ssh_private_key_by_untrusted_program": 1},
    "persist_shell_rc": {"modify_shell_configuration_file": 2},
    "revshell_bash_dev_tcp": {"redirect_stdio_to_network_connection": 3, "shell_opens_dev_tcp": 1},
    "revshell_busybox_nc": {"redirect_stdio_to_network_connection": 2},
    "revshell_perl": {"redirect_stdio_to_network_connection": 3},
    "c2_beacon": {"outbound_connection_to_c2_port": 1},
    "miner_xmrig": {"crypto_miner_launched": 2, "outbound_connection_to_c2_port": 1},
    "miner_renamed": {"outbound_connection_to_c2_port": 1},
    "net_cloud_metadata": {"contact_cloud_metadata_service": 2},
    "exec_tmp": {"execution_from_tmp": 1},
    "priv_ptrace": {"ptrace_attached_to_process": 3, "debugger_spawns_a_helper": 1},
    "persist_setuid": {"set_setuid_or_setgid_bit": 2},
    "priv_namespaces": {"namespace_change_by_non_sandbox": 2},
    "benign_git": {},
    "benign_compile": {},
}


@pytest.fixture(scope="module")
def falco_set() -> Any:
    return load_ruleset([FALCO], replace_bundled=True)


def test_falco_file_lints_with_no_error_and_no_warning() -> None:
    report = lint([FALCO], replace_bundled=True)
    assert [str(d) for d in report.diagnostics] == []
    assert report.rules == 12                  # 13 rules, one with enabled: false


def test_falco_file_loads_beside_the_bundled_rules() -> None:
    report = lint([FALCO])
    assert report.errors == []
    assert report.rules >= 37 + 12


def test_falco_names_priorities_and_changes(falco_set: Any) -> None:
    rule = falco_set.rule("read_ssh_private_key_by_untrusted_program").rule
    assert rule.title == "Read SSH private key by untrusted program"
    assert rule.dialect == "falco"
    assert rule.severity is Severity.HIGH                 # override: priority ERROR replaced WARNING
    assert len(rule.condition) == 2                      # override: condition append
    assert falco_set.rule("redirect_stdio_to_network_connection").severity is Severity.CRITICAL
    assert falco_set.rule("contact_cloud_metadata_service").severity is Severity.LOW     # NOTICE
    assert falco_set.rule("debugger_spawns_a_helper").severity is Severity.INFO         # DEBUG
    assert not falco_set.rule("remove_file_from_tmp").rule.enabled
    assert "xmr-stak" in falco_set.lists["miner_binaries"].items                        # list append
    rc = falco_set.rule("modify_shell_configuration_file").rule
    assert [e.name for e in rc.exceptions] == ["rc_writers", "rc_writers"]               # rows appended
    tmp = falco_set.rule("execution_from_tmp").rule
    assert tmp.description.endswith("(tuned for this host).")
    # evt.type of syscall names -> our event types; priv syscalls also test priv.op
    assert [t.label for t in falco_set.rule("ptrace_attached_to_process").conditions[0].events] == ["priv"]
    assert [t.label for t in falco_set.rule("read_ssh_private_key_by_untrusted_program").conditions[0].events] \
        == ["file_open"]
    assert {t.label for t in falco_set.rule("outbound_connection_to_c2_port").conditions[0].events} == {"connect"}
    # a Falco file's secret reads reach the kernel's sensitive path set
    assert {"/srv", "/home", "/root"} <= set(falco_set.sensitive_prefixes())    # the pmatch appended


def test_falco_rules_fire_on_recorded_traces(falco_set: Any) -> None:
    fired: Counter[str] = Counter()
    for name, expected in EXPECTED.items():
        result = replay([TRACES / f"{name}.jsonl.gz"], falco_set)
        assert dict(result.by_rule) == expected, name
        fired.update(result.by_rule)
    assert set(fired) == set(falco_set.rule_ids)          # every enabled rule fires somewhere


def test_falco_output_uses_falco_fields(falco_set: Any) -> None:
    result = replay([TRACES / "c2_beacon.jsonl.gz"], falco_set)
    out = result.alerts[0].alert.output
    assert "connection=198.18.203.2:4444 type=4 process=python3" in out
    assert out.endswith("res=EINPROGRESS)")


def test_every_compat_macro_resolves(tmp_path: Path) -> None:
    data = load_file(compat_dir() / "falco.yaml", Diagnostics())
    macros = [item["macro"] for item in data if "macro" in item]
    assert {"spawned_process", "open_read", "open_write", "container", "interactive", "shell_procs",
            "outbound", "modify", "sensitive_files"} <= set(macros)
    text = "".join(f"""
- rule: Uses {m}
  desc: uses the macro {m}
  condition: {m} or proc.name = never-{m}
  output: x
  priority: INFO
""" for m in macros)
    path = tmp_path / "uses.yaml"
    path.write_text(text)
    report = lint([path], replace_bundled=True)
    assert report.errors == []


def test_a_file_may_define_what_the_compat_file_defines(tmp_path: Path) -> None:
    path = tmp_path / "falco_rules.yaml"
    path.write_text("- macro: open_read\n  condition: evt.type = openat and fd.num >= 0\n"
                    "- rule: Any read\n  desc: d\n  condition: open_read and fd.name = /etc/shadow\n"
                    "  output: o\n  priority: WARNING\n  tags: [T1003]\n")
    report = lint([path], replace_bundled=True)
    assert [str(d) for d in report.diagnostics] == []


def falco_errors(tmp_path: Path, condition: str, extra: str = "") -> list[str]:
    path = tmp_path / "f.yaml"
    path.write_text(f"- rule: R\n  desc: d\n  condition: {condition}\n  output: o\n  priority: WARNING\n{extra}")
    report = lint([path], replace_bundled=True)
    return [f"{Path(d.source.path).name}:{d.source.line}: {d.level}: {d.message}" for d in report.diagnostics]


@pytest.mark.parametrize(("condition", "extra", "line"), [
    ("proc.tty != 0", "", "f.yaml:3: error: field 'proc.tty' is not supported: terminals are not recorded: "
                          "use proc.is_shell and proc.pname for interactive shells"),
    ("evt.type = accept", "", "f.yaml:3: error: event 'accept' is not supported: inbound sockets are not "
                              "probed; watch the outbound side with connect (fd.sip, fd.sport)"),
    ("evt.type in (execve, mkdir)", "", "f.yaml:3: warning: event 'mkdir' is not supported (not probed; the "
                                        "file's later open, rename or chmod is): it never matches"),
    ("k8s.ns.name = default", "", "f.yaml:3: error: field 'k8s.ns.name' is not supported: Kubernetes "
                                  "metadata is not collected: use container.name"),
    ("fd.cip = 10.0.0.1", "", "f.yaml:3: error: field 'fd.cip' is not supported: the local end of a connect "
                              "is not recorded: use fd.sip / fd.sport (the remote end)"),
    ("proc.name glob val(proc.pname)", "", "f.yaml:3: error: val() works with =, !=, <, <=, >, >=, startswith, "
                                           "endswith, contains, not 'glob'"),
    ("proc.pid = val(proc.name)", "", "f.yaml:3: error: val() compares proc.pid (number) with proc.name "
                                      "(string): use fields of one type"),
    ("proc.name containz x", "", "f.yaml:3: error: unknown operator 'containz' (did you mean 'contains'?)"),
    ("evt.type = execve", "  source: k8s_audit\n",
     "f.yaml:6: error: rule 'R': source 'k8s_audit' is not supported: coi-sentinel sees syscalls (source: syscall)"),
])
def test_unsupported_constructs_are_one_line_each(tmp_path: Path, condition: str, extra: str, line: str) -> None:
    lines = falco_errors(tmp_path, condition, extra)
    assert line in lines
    assert len([x for x in lines if x.split(": ", 2)[1] in ("error", "warning") and "never fire" not in x]) >= 1
    assert len([x for x in lines if x == line]) == 1


def test_unsupported_output_field_prints_na_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text("- rule: R\n  desc: d\n  condition: spawned_process\n"
                    "  output: x (image=%container.image.repository tty=%proc.tty)\n  priority: NOTICE\n  tags: [T1059]\n")
    report = lint([path], replace_bundled=True)
    assert [d.message for d in report.diagnostics] == [
        "output field '%container.image.repository' is not supported (containers are Incus instances without "
        "image metadata: use container.name): it prints <NA>",
        "output field '%proc.tty' is not supported (terminals are not recorded: use proc.is_shell and "
        "proc.pname for interactive shells): it prints <NA>"]


def falco_rule(name: str, condition: str) -> str:
    return f"- rule: {name}\n  desc: d\n  condition: >\n    {condition}\n  output: o\n  priority: NOTICE\n"


def test_falco_operators_and_fields(rules: Any, ev: Any, run: Any) -> None:
    rs = rules.load(
        falco_rule("Pmatch", "open_read and fd.name pmatch (/etc, /srv/keys/)"),
        falco_rule("Intersects", "spawned_process and proc.aname intersects (sshd, tmux)"),
        falco_rule("Bytes", "spawned_process and proc.cmdline bcontains 2f6465762f746370 "
                            "and proc.name bstartswith 6261"),
        falco_rule("Iglob", "spawned_process and proc.exepath iglob '/USR/BIN/PY*'"),
        falco_rule("Ancestor", "spawned_process and proc.aname[2] = tmux and proc.pname = bash "
                               "and user.name = root and user.uid = 0 and container.id = agent-1"),
        falco_rule("Failed open", "open_file_failed and evt.res = ENOENT and evt.rawres = -2 "
                                  "and fd.directory = /srv/keys and fd.filename endswith .pem"),
        falco_rule("Outbound", "outbound and fd.sport = 443 and fd.typechar = 6 and fd.type = ipv6"),
        falco_rule("Exists", "evt.type = chmod and fd.name exists and fd.name glob '/srv/*/run.sh'"),
        falco_rule("Same name", "spawned_process and proc.name = val(proc.pname) and proc.pid > val(proc.ppid) "
                                "and proc.cmdline contains val(proc.name)"),
    )
    r = run(rs)
    assert r.feed(ev.fork(10, 11, comm="tmux"), ev.exec(11, "/usr/bin/bash", ppid=10, uid=0),
                  ev.fork(11, 12, comm="bash"),
                  ev.exec(12, "/usr/bin/bash", "bash", "-c", "echo >/dev/tcp/x/1", ppid=11, uid=0)
                  ) == ["intersects", "intersects", "bytes", "ancestor", "same_name"]
    assert r.feed(ev.exec(13, "/usr/bin/python3.11", ppid=1)) == ["iglob"]
    assert r.feed(ev.open(12, "/etc/shadow", ppid=11), ev.open(12, "/etcetera", ppid=11),
                  ev.open(12, "/srv/keys/a.pem", ppid=11)) == ["pmatch", "pmatch"]
    assert r.feed(ev.open(12, "/srv/keys/b.pem", errno=2, ppid=11)) == ["pmatch", "failed_open"][1:]
    assert r.feed(ev.connect(12, "2001:db8::1", 443), ev.connect(12, "::1", 443),
                  ev.connect(12, "192.0.2.1", 443)) == ["outbound"]
    assert r.feed(ev.chmod(12, "/srv/app/run.sh", 0o755)) == ["exists"]
    # val(): bash started by bash (pid 12 > ppid 11), not python started by bash
    assert r.feed(ev.fork(12, 14, comm="bash"),
                  ev.exec(14, "/usr/bin/bash", ppid=12)) == ["intersects", "same_name"]
    assert r.feed(ev.fork(12, 15, comm="bash"), ev.exec(15, "/usr/bin/node", ppid=12)) == ["intersects"]


def test_audit_show_severity_accepts_falco_priorities(tmp_path: Path) -> None:
    for name in ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"):
        assert name in severity.LEVELS
    assert severity.rank("warning") == severity.rank("medium")
    assert severity.rank("notice") == severity.rank("low")
    log = tmp_path / "a.jsonl"
    log.write_text("")
    result = CliRunner().invoke(cli, ["audit", "show", str(log), "--severity", "notice"])
    assert "Invalid value for '--severity'" not in result.output
