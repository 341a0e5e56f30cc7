"""Driven runs: the real agent CLIs in monitored sessions (default network mode, restricted),
pointed at a scripted stand-in for their model API (tests/agent_standins.py) that lives in the
fake upstream (tests/upstream.py) under the API's real name. The canned turns make each agent
use its real tools on a small task: read calc.py, fix it, run `make test`, commit. The session
must finish with the fix committed in the workspace and raise no alert.

The audit logs of these runs are the benign agent traces of the rule corpus
(rules/tests/agents.yaml, traces rules/tests/traces/agent-*.jsonl.gz: gzip the files that
COI_RECORD_AGENT_TRACES=DIR collects).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_support import FIXED, git_log, require_agent_image, task_repo
from incus_support import require_incus
from support import require_bpf
from upstream import API4, upstream_fixture

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

STANDINS = str(Path(__file__).resolve().parents[1] / "agent_standins.py")
TASK = "Fix add() in calc.py so that make test passes, then commit the fix."


@pytest.fixture
def upstream():
    require_incus("coi/debian12")
    yield from upstream_fixture()


def start_standin(up, api: str, script: dict, tmp: Path) -> Path:
    (tmp / "script.json").write_text(json.dumps(script))
    log = tmp / "api.jsonl"
    log.touch()
    up.run_in([sys.executable, STANDINS, api, "--bind", API4, "--port", "80",
               "--script", str(tmp / "script.json"), "--log", str(log), "--lifetime", "600"])
    up._wait(lambda: up.ns_run([sys.executable, "-c", "import socket; socket.create_connection("
                                f"('{API4}', 80), timeout=1); print('ok')"]) == "ok",
             f"the {api} stand-in")
    return log


def run_agent(env, up, tool: str, command: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    """``run --tool TOOL -- COMMAND`` monitored, in the default network mode, on the lab. The
    tool's known false positives only alert (so the run shows whether the task gets done, and
    the test then names them); every other rule keeps its default action."""
    env.config(monitoring=True, network_bridge=up.bridge, network_dns=[up.router],
               env=sorted(extra_env))
    known = sorted(KNOWN_FALSE_POSITIVES.get(tool, ()))
    if known:
        with open(env.home / ".config/coi-sentinel/config.toml", "a") as f:
            f.write("\n[response.rules]\n" + "".join(f'{rule} = "alert"\n' for rule in known))
    try:
        return subprocess.run(env.argv("run", "--tool", tool, "--", *command), cwd=env.ws,
                              env={**env.env, **extra_env}, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:       # say where the agent got stuck
        tail = (err.stderr or b"")[-3000:]
        pytest.fail(f"{tool} did not finish in {err.timeout:.0f} s; its stderr ends: "
                    f"{tail.decode(errors='replace') if isinstance(tail, bytes) else tail}")


def audit_of(env) -> Path:
    [audit] = (env.home / ".local/state/coi-sentinel/audit").glob("*.jsonl")
    return audit


#: rules that fire on the real agents' own behaviour while their owners fix them (tool -> rules):
#: a run whose only alerts are these is an xfail naming them, never a pass; any other alert
#: fails the test
KNOWN_FALSE_POSITIVES: dict[str, set[str]] = {
    # none today: Claude Code's (git -c hooks off, its `bash -c env` probe, the shell
    # snapshot's stdin taken for the API socket) and codex's (the same stale fd) are fixed
}


def known_false_positives(records: list[dict], tool: str) -> set[str]:
    """The rules that fired, when every one of them is a known false positive of ``tool``."""
    fired = {rec.get("rule") for rec in records if rec.get("record") == "alert"}
    return fired if fired and fired <= KNOWN_FALSE_POSITIVES.get(tool, set()) else set()


def check_finished(env, r: subprocess.CompletedProcess, tool: str) -> list[dict]:
    """The task is done: exit 0, the fix in the workspace, make and git ran in the session
    (seen by the monitor). Returns the audit records (and keeps the trace when asked). A run
    the monitor stopped for a known false positive only is an xfail naming the rules."""
    audits = list((env.home / ".local/state/coi-sentinel/audit").glob("*.jsonl"))
    assert len(audits) == 1, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    records = [json.loads(line) for line in audit_of(env).read_text().splitlines()]
    keep = os.environ.get("COI_RECORD_AGENT_TRACES")
    if keep:
        shutil.copy(audit_of(env), Path(keep) / f"agent-{tool}.jsonl")
    if r.returncode == 3 and known_false_positives(records, tool):
        pytest.xfail(f"the monitor stopped {tool} on a known false positive: "
                     f"{', '.join(sorted(known_false_positives(records, tool)))}")
    fired = [(rec.get("rule"), rec.get("output")) for rec in records if rec.get("record") == "alert"]
    assert r.returncode == 0, (fired, r.stdout[-2000:], r.stderr[-3000:])
    assert (env.ws / "calc.py").read_text() == FIXED
    execs = {Path(ev["argv"][0]).name for ev in records if ev.get("type") == "exec" and ev.get("argv")}
    assert {"make", "git"} <= execs, sorted(execs)
    return records


def check_no_alert(r: subprocess.CompletedProcess, records: list[dict], tool: str) -> None:
    alerts = [rec for rec in records if rec.get("record") == "alert"]
    if known_false_positives(records, tool):
        pytest.xfail(f"{len(alerts)} alert(s) of "
                     f"{', '.join(sorted(known_false_positives(records, tool)))} on {tool}'s own "
                     "behaviour (known false positives, see KNOWN_FALSE_POSITIVES)")
    assert alerts == [], alerts
    assert "alert(s) in" not in r.stderr, r.stderr


def test_driven_claude_code_fixes_tests_and_commits(env, upstream, tmp_path):
    require_bpf()
    require_agent_image("claude")
    task_repo(env.ws)
    steps = [
        {"tool": "Read", "input": {"file_path": "/workspace/calc.py"}},
        {"tool": "Edit", "input": {"file_path": "/workspace/calc.py", "old_string": "return a - b",
                                   "new_string": "return a + b"}},
        {"tool": "Bash", "input": {"command": "make test", "description": "Run the tests"}},
        {"tool": "Bash", "input": {"command": "git commit -am 'Fix add'",
                                   "description": "Commit the fix"}},
        {"text": "Fixed add() in calc.py; make test passes; committed."},
    ]
    log = start_standin(upstream, "anthropic", {"steps": steps}, tmp_path)
    r = run_agent(env, upstream, "claude",
                  ["claude", "-p", TASK, "--dangerously-skip-permissions"],
                  {"ANTHROPIC_BASE_URL": "http://api.anthropic.com",
                   "ANTHROPIC_API_KEY": "sk-ant-standin-not-a-key",
                   "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"})
    records = check_finished(env, r, "claude")
    assert "Fixed add()" in r.stdout
    assert git_log(env.ws) == ["Agent|Fix add", "Test|init"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    main = [c["results"] for c in calls if c.get("main")]
    assert main[:5] == [0, 1, 2, 3, 4], calls          # every tool ran and reported back
    assert {c["auth"] for c in calls if c.get("main")} == {"sk-ant-standin-not-a-key"}
    check_no_alert(r, records, "claude")


AIDER_EDIT = """calc.py
```python
<<<<<<< SEARCH
    return a - b
=======
    return a + b
>>>>>>> REPLACE
```
"""


def test_driven_aider_fixes_tests_and_commits(env, upstream, tmp_path):
    require_bpf()
    require_agent_image("aider")
    task_repo(env.ws)
    # aider's own config file in the user's home, staged into the agent's (profile credentials)
    (env.home / ".aider.conf.yml").write_text("openai-api-key: sk-staged-from-aider-conf\n"
                                              "openai-api-base: http://api.openai.com/v1\n")
    log = start_standin(upstream, "openai", {"replies": [AIDER_EDIT, "Done."],
                                             "commit_message": "Fix add in calc.py"}, tmp_path)
    r = run_agent(env, upstream, "aider",
                  ["aider", "--model", "openai/gpt-4o", "--yes-always", "--no-check-update", "--no-show-release-notes",
                   "--analytics-disable", "--no-stream", "--no-pretty", "--no-fancy-input",
                   "--no-auto-lint", "--no-gitignore", "--edit-format", "diff",
                   "--test-cmd", "make test", "--auto-test", "--message", TASK, "calc.py"],
                  {"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    records = check_finished(env, r, "aider")
    log_lines = git_log(env.ws)
    assert log_lines[-1] == "Test|init" and len(log_lines) == 2, log_lines
    assert "Fix add in calc.py" in log_lines[0], log_lines
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [c.get("kind") for c in calls]
    assert "reply0" in kinds and "commit" in kinds, kinds
    assert {c["auth"] for c in calls} == {"Bearer sk-staged-from-aider-conf"}, calls
    check_no_alert(r, records, "aider")


#: the same task in the tool-neutral steps the Responses stand-in turns into codex's own tools
CODEX_STEPS = [
    {"shell": "cat calc.py"},
    {"patch": "*** Begin Patch\n*** Update File: calc.py\n@@\n def add(a, b):\n-    return a - b\n"
              "+    return a + b\n*** End Patch\n"},
    {"shell": "make test"},
    {"shell": "git commit -am 'Fix add'"},
    {"text": "Fixed add() in calc.py; make test passes; committed."},
]


def test_driven_codex_fixes_tests_and_commits(env, upstream, tmp_path):
    require_bpf()
    require_agent_image("codex")
    task_repo(env.ws)
    # codex's own files in the user's home, staged into the agent's (profile credentials): the
    # API key in auth.json, the model and the API's base URL in config.toml (codex 0.171 reads
    # `openai_base_url` there; it no longer honours the OPENAI_BASE_URL variable). It tries the
    # Responses API over a WebSocket first; the stand-in answers plain HTTP, so it falls back
    # to HTTP + server-sent events, as it does behind a proxy without WebSockets.
    (env.home / ".codex").mkdir()
    (env.home / ".codex/auth.json").write_text(json.dumps({"OPENAI_API_KEY": "sk-staged-codex-auth"}))
    (env.home / ".codex/config.toml").write_text('model = "gpt-5-codex"\n'
                                                 'openai_base_url = "http://api.openai.com/v1"\n')
    log = start_standin(upstream, "openai", {"steps": CODEX_STEPS}, tmp_path)
    r = run_agent(env, upstream, "codex",
                  ["codex", "exec", "--dangerously-bypass-approvals-and-sandbox", TASK], {})
    records = check_finished(env, r, "codex")
    assert "Fixed add()" in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    assert git_log(env.ws) == ["Agent|Fix add", "Test|init"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    turns = [c["results"] for c in calls if "results" in c]      # the POSTs (not the WebSocket tries)
    assert turns[:5] == [0, 1, 2, 3, 4], calls          # every tool ran and reported back
    assert {c["auth"] for c in calls if "results" in c} == {"Bearer sk-staged-codex-auth"}, calls
    check_no_alert(r, records, "codex")


OPENCODE_STEPS = [
    {"tool": "read", "input": {"filePath": "/workspace/calc.py"}},
    {"tool": "edit", "input": {"filePath": "/workspace/calc.py", "oldString": "return a - b",
                               "newString": "return a + b"}},
    {"tool": "bash", "input": {"command": "make test", "description": "Run the tests"}},
    {"tool": "bash", "input": {"command": "git commit -am 'Fix add'", "description": "Commit the fix"}},
    {"text": "Fixed add() in calc.py; make test passes; committed."},
]


def test_driven_opencode_fixes_tests_and_commits(env, upstream, tmp_path):
    require_bpf()
    require_agent_image("opencode")
    task_repo(env.ws)
    # opencode's own files in the user's home, staged into the agent's: the provider key in
    # auth.json, the provider's base URL and the permissions in opencode.json
    (env.home / ".local/share/opencode").mkdir(parents=True)
    (env.home / ".local/share/opencode/auth.json").write_text(
        json.dumps({"anthropic": {"type": "api", "key": "sk-ant-staged-opencode-auth"}}))
    (env.home / ".config/opencode").mkdir(parents=True)
    (env.home / ".config/opencode/opencode.json").write_text(json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "model": "anthropic/claude-sonnet-4-5",
        "autoupdate": False, "share": "disabled",
        "permission": {"edit": "allow", "bash": "allow"},
        "provider": {"anthropic": {"options": {"baseURL": "http://api.anthropic.com/v1"}}}}))
    log = start_standin(upstream, "anthropic", {"steps": OPENCODE_STEPS}, tmp_path)
    r = run_agent(env, upstream, "opencode", ["opencode", "run", TASK],
                  {"OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1",
                   "OPENCODE_DISABLE_LSP_DOWNLOAD": "1"})
    records = check_finished(env, r, "opencode")
    assert git_log(env.ws) == ["Agent|Fix add", "Test|init"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    main = [c["results"] for c in calls if c.get("main")]
    assert main[:5] == [0, 1, 2, 3, 4], calls
    assert {c["auth"] for c in calls if c.get("main")} == {"sk-ant-staged-opencode-auth"}, calls
    check_no_alert(r, records, "opencode")
