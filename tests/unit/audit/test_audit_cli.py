"""`coi-sentinel audit verify|show|export`, through the real entry point (exit codes included)."""

from __future__ import annotations

import os

import orjson
import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy, verify
from coi_sentinel.cli.main import main
from coi_sentinel.trace import make_header, read_events

pytestmark = pytest.mark.unit

SCOPE_A = 700           # conftest.event()'s default scope


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def session_log(tmp_path, make_event):
    """Session "agent-1" under tmp_path: two files, alerts of three severities, an action."""
    path = tmp_path / "agent-1.jsonl"
    policy = AuditPolicy(fsync=False, max_bytes=None, max_age=None, retention=None)
    with AuditLog(path, make_header("run", session="agent-1"), policy=policy, events="context") as log:
        for i in range(10):
            log.write_event(make_event(i))
        log.write_alert({"rule": "shell_reverse", "severity": "critical", "scope_id": SCOPE_A,
                         "output": "Reverse shell: bash with stdin on a socket pid=1009",
                         "process": {"pid": 1009, "exe": "/bin/bash", "cmdline": "bash -i"},
                         "ancestry": [{"pid": 999, "exe": "/usr/bin/node", "cmdline": "node agent.js"},
                                      {"pid": 1, "comm": "init"}]})
        log.write_action({"action": "pause", "container": "c700", "rule": "shell_reverse"})
        log.rotate()
        log.write_record({"record": "drops", "source": "kernel", "counts": {"exec": 3}})
        log.write_alert({"rule": "cred_read", "severity": "medium", "scope_id": SCOPE_A,
                         "time": "2020-01-01T00:00:00.000Z"})
        log.write_alert({"rule": "shell_spawn", "severity": "low", "scope_id": SCOPE_A})
    return path


def test_help_of_every_audit_command_has_examples(capsys):
    for args in (["audit"], ["audit", "verify"], ["audit", "show"], ["audit", "export"]):
        code, out, _err = run(capsys, *args, "--help")
        assert code == 0 and "Examples:" in out and "coi-sentinel audit" in out


def test_verify_ok(capsys, session_log):
    code, out, _err = run(capsys, "audit", "verify", str(session_log))
    assert code == 0
    assert out.splitlines()[-1] == "intact: 20 lines in 2 files"
    assert "head of chain" in out


def test_verify_finds_tampering_and_exits_1(capsys, session_log):
    rotated = session_log.with_name("agent-1.000001.jsonl")
    lines = rotated.read_bytes().splitlines(keepends=True)
    del lines[4]
    rotated.write_bytes(b"".join(lines))
    code, out, _err = run(capsys, "audit", "verify", str(session_log))
    assert code == 1
    assert f"problem: {rotated}:5: record 4 is missing before this line: deleted" in out
    assert out.splitlines()[-1].startswith("NOT intact: 1 problem in 2 files; the first: ")
    code, out, _err = run(capsys, "audit", "verify", "--json", str(session_log))
    report = orjson.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["problems"][0] == {"kind": "missing", "path": str(rotated), "line": 5,
                                     "message": "record 4 is missing before this line: deleted"}


def test_verify_by_session_name_and_log_dir(capsys, session_log, monkeypatch):
    code, out, _err = run(capsys, "audit", "verify", "--log-dir", str(session_log.parent), "agent-1")
    assert code == 0 and "intact" in out
    monkeypatch.setenv("COI_SENTINEL_LOG_DIR", str(session_log.parent))
    code, _out, _err = run(capsys, "audit", "verify", "agent-1")
    assert code == 0
    code, _out, err = run(capsys, "audit", "verify", "agent-2")
    assert code == 1 and err.startswith("coi-sentinel: error: no audit log for session 'agent-2'")


def test_verify_foreign_file(capsys, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("hello\n")
    code, out, _err = run(capsys, "audit", "verify", str(path))
    assert code == 1 and f"problem: {path}:1: not an audit log" in out


def test_show_alerts_first_with_ancestry(capsys, session_log):
    code, out, _err = run(capsys, "audit", "show", str(session_log))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "ALERTS (3)"
    assert lines[1].endswith("critical  shell_reverse")
    assert lines[2] == "  Reverse shell: bash with stdin on a socket pid=1009"
    assert lines[3].split() == ["process", "1009", "/bin/bash", "bash", "-i"]
    assert lines[4].split() == ["parent", "999", "/usr/bin/node", "node", "agent.js"]
    assert lines[5].split() == ["ancestor", "1", "init"]
    assert lines[6] == "  context  10 events before it (--context lists them)"
    assert lines.index("ACTIONS (1)") < lines.index("SUMMARY")
    assert "  drops: source=kernel counts={'exec': 3}" in lines
    assert all(len(line) <= 80 for line in lines)


def test_show_filters(capsys, session_log):
    code, out, _err = run(capsys, "audit", "show", str(session_log), "--severity", "high", "--json")
    alerts = [orjson.loads(x) for x in out.splitlines() if orjson.loads(x)["record"] == "alert"]
    assert code == 0 and [a["rule"] for a in alerts] == ["shell_reverse"]
    assert alerts[0]["at"] == f"{session_log.with_name('agent-1.000001.jsonl')}:13"
    _code, out, _err = run(capsys, "audit", "show", str(session_log), "--rule", "shell_*", "--json")
    objs = [orjson.loads(x) for x in out.splitlines()]
    assert [o["rule"] for o in objs if o["record"] == "alert"] == ["shell_reverse", "shell_spawn"]
    assert [o["action"] for o in objs if o["record"] == "action"] == ["pause"]
    _code, out, _err = run(capsys, "audit", "show", str(session_log), "--since", "2h", "--json")
    objs = [orjson.loads(x) for x in out.splitlines()]
    assert "cred_read" not in [o.get("rule") for o in objs]               # logged in 2020
    summary = objs[-1]
    assert summary["record"] == "summary" and summary["events"] == 10
    code, _out, err = run(capsys, "audit", "show", str(session_log), "--since", "yesterday-ish")
    assert code == 2 and "not a time or a duration" in err


def test_show_context_lists_the_events(capsys, session_log, make_event):
    _code, out, _err = run(capsys, "audit", "show", str(session_log), "--context", "--json",
                           "--rule", "shell_reverse")
    alert = orjson.loads(out.splitlines()[0])
    assert [e["pid"] for e in alert["context"]] == [make_event(i).pid for i in range(10)]
    _code, out, _err = run(capsys, "audit", "show", str(session_log), "--context")
    assert sum(" exec " in line for line in out.splitlines()) == 10


def test_export_then_verify(capsys, session_log, tmp_path):
    out_path = tmp_path / "evidence.jsonl.gz"
    code, out, _err = run(capsys, "audit", "export", str(session_log), "-o", str(out_path))
    assert code == 0 and out.strip() == f"{out_path}: 20 lines from 2 file(s)"
    assert oct(os.stat(out_path).st_mode & 0o777) == "0o600"
    assert verify([out_path]).ok
    assert len(list(read_events([out_path]))) == 10
    code, _out, err = run(capsys, "audit", "export", str(session_log), "-o", str(out_path))
    assert code == 1 and "already exists" in err
    code, _out, _err = run(capsys, "audit", "export", str(session_log), "-o", str(out_path),
                           "--overwrite")
    assert code == 0


def test_export_refuses_a_damaged_log(capsys, session_log, tmp_path):
    data = session_log.read_bytes()
    session_log.write_bytes(data.replace(b'"cred_read"', b'"cred_reed"'))
    code, _out, err = run(capsys, "audit", "export", str(session_log), "-o", str(tmp_path / "e.jsonl"))
    assert code == 1 and "verification failed" in err and "--force" in err
    code, _out, err = run(capsys, "audit", "export", "--force", str(session_log), "-o",
                          str(tmp_path / "e.jsonl"))
    assert code == 0 and "exported despite 1 problem(s)" in err
