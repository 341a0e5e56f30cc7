"""Pipes, fifos and ptys in the kernel (pipe.bpf.c, file.bpf.c's opens, net.bpf.c's dups,
proc.bpf.c's fork copy): exact chan events and the fd kind of every dup onto stdio, from real
workloads in their own cgroup."""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from coi_sentinel.events import model
from coi_sentinel.events.structs import path_hash

pytestmark = pytest.mark.bpf

N_PIPES = 17


def _run_with_listener(watched, py, code: str):
    """Run code (its {port}: a loopback listener's) and close the listener after."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        return watched.run([py, "-c", code.replace("{port}", str(srv.getsockname()[1]))])
    finally:
        srv.close()


def test_pipe_ends_reach_children_through_fork_and_dup(watched, py):
    """A shell's pipeline loop: pipe, fork, the parent closes both ends at once and makes the
    next pipe on the same fd numbers; the child dup2s its ends onto 0 and 1 only after that.
    Each child's dups name its own pipe (the fork copied the parent's ends), read and write."""
    code = textwrap.dedent(f"""
        import os, time
        extra = None
        for i in range({N_PIPES}):
            if extra:
                os.close(extra[0]); os.close(extra[1]); extra = None
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                time.sleep(0.05)          # the parent has reused r and w by now
                os.dup2(r, 0)
                os.dup2(w, 1)
                os._exit(0)
            os.close(r); os.close(w)
            if i % 2 == 0:
                extra = os.pipe()         # same numbers, another pipe, open while the child runs
        while True:
            try:
                os.wait()
            except ChildProcessError:
                break
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    pipes = [c for c in run.of(model.ChanEvent, pid=run.pid) if c.op == "pipe"]
    assert len(pipes) == N_PIPES + (N_PIPES + 1) // 2
    assert all(c.kind == "pipe" and c.end == "read" and c.fd2 >= 0 and c.errno == 0 for c in pipes)
    assert len({c.chan_id for c in pipes}) == len(pipes)
    children = [f.child_pid for f in run.of(model.ForkEvent, pid=run.pid)]
    assert len(children) == N_PIPES
    # the i-th fork follows the pipe made just before it
    made = [c.chan_id for c in pipes]
    expected = []
    k = 0
    for i in range(N_PIPES):
        expected.append(made[k])
        k += 2 if i % 2 == 0 else 1
    for child, cid in zip(children, expected):
        dups = sorted(run.of(model.DupEvent, pid=child), key=lambda d: d.newfd)
        assert [(d.newfd, d.fd_kind, d.chan_id, d.chan_end, d.is_socket) for d in dups] == [
            (0, "pipe", cid, "read", False), (1, "pipe", cid, "write", False)]
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_a_closed_socket_fd_reused_by_a_pipe_is_a_pipe(watched, py):
    """The driven Claude Code run's false positive, in the kernel: a socket's fd is closed, a
    pipe takes the number, a child dup2s it onto stdin. The dup says pipe, not socket; a file
    opened on a closed pipe's number is 'other'."""
    code = textwrap.dedent("""
        import os, socket
        s = socket.create_connection(('127.0.0.1', {port}))
        n = s.fileno()
        s.close()
        r, w = os.pipe()
        assert r == n, (r, n)
        pid = os.fork()
        if pid == 0:
            os.dup2(r, 0)
            os._exit(0)
        os.waitpid(pid, 0)
        os.close(r)
        f = os.open('/dev/null', os.O_RDONLY)
        assert f == n
        os.dup2(f, 0)
    """)
    run = _run_with_listener(watched, py, code)
    assert run.returncode == 0, run.stderr
    child = run.of(model.ForkEvent, pid=run.pid)[0].child_pid
    [cdup] = run.of(model.DupEvent, pid=child)
    assert (cdup.fd_kind, cdup.is_socket, cdup.chan_end) == ("pipe", False, "read")
    [pdup] = run.of(model.DupEvent, pid=run.pid)
    assert (pdup.fd_kind, pdup.is_socket, pdup.chan_id) == ("other", False, 0)
    assert watched.alerts(run.events) == []


def test_fifo_made_in_scope_links_its_readers_and_writers(watched, py, tmp_path):
    code = textwrap.dedent("""
        import os
        os.chdir(%r)
        os.mkfifo('f')
        r = os.open('f', os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(os.path.abspath('f'), os.O_WRONLY)
        rw = os.open('f', os.O_RDWR)
        os.dup2(w, 1)
    """ % str(tmp_path))
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    opens = [c for c in run.of(model.ChanEvent, pid=run.pid) if c.op == "open"]
    want = path_hash(str(tmp_path / "f").encode())
    assert [(c.kind, c.end, c.chan_id) for c in opens] == [
        ("fifo", "read", want), ("fifo", "write", want), ("fifo", "rdwr", want)]
    [dup] = run.of(model.DupEvent, pid=run.pid)
    assert (dup.newfd, dup.fd_kind, dup.chan_id, dup.chan_end) == (1, "fifo", want, "write")


def test_pty_master_and_slave_share_an_id(watched, py):
    """openpty(3) (/dev/ptmx, then TIOCGPTPEER) and ptsname(3) + open("/dev/pts/N") (TIOCGPTN
    tells N) both link the slave to its master."""
    code = textwrap.dedent("""
        import ctypes, os
        m1, s1 = os.openpty()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptsname.restype = ctypes.c_char_p
        m2 = os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY)
        assert libc.grantpt(m2) == 0 and libc.unlockpt(m2) == 0
        name = libc.ptsname(m2).decode()
        s2 = os.open(name, os.O_RDWR | os.O_NOCTTY)
        os.dup2(s2, 0)
        print(name)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    num = int(run.stdout.decode().strip().rsplit("/", 1)[1])
    chans = run.of(model.ChanEvent, pid=run.pid)
    masters = [c for c in chans if c.end == "master"]
    slaves = [c for c in chans if c.end == "slave"]
    assert len(masters) == 2 and all(c.kind == "pty" and c.op == "open" for c in masters)
    assert [(s.op, s.chan_id) for s in slaves] == [("ptpeer", masters[0].chan_id),
                                                   ("open", masters[1].chan_id)]
    assert slaves[1].pty == num and masters[0].chan_id != masters[1].chan_id
    [dup] = run.of(model.DupEvent, pid=run.pid)
    assert (dup.fd_kind, dup.chan_id, dup.chan_end) == ("pty", masters[1].chan_id, "slave")


def test_pipes_outside_the_scope_are_not_seen(watched, py):
    run = watched.run([py, "-c", "import os\nfor i in range(7): os.pipe()"], scoped=False)
    assert run.returncode == 0 and run.events == []


def test_a_closed_socket_fd_reused_by_a_socketpair_is_a_socketpair(watched, py):
    """How Bun and libuv give a child its stdio: a unix socketpair, here on the number of a
    closed TCP socket. The child's dup onto stdin says socketpair, linked to the parent's end."""
    code = textwrap.dedent("""
        import os, socket
        s = socket.create_connection(('127.0.0.1', {port}))
        n = s.fileno()
        s.close()
        a, b = socket.socketpair()
        assert a.fileno() == n
        pid = os.fork()
        if pid == 0:
            os.dup2(a.fileno(), 0)
            os._exit(0)
        os.waitpid(pid, 0)
    """)
    run = _run_with_listener(watched, py, code)
    assert run.returncode == 0, run.stderr
    [pair] = [c for c in run.of(model.ChanEvent, pid=run.pid) if c.op == "socketpair"]
    assert (pair.kind, pair.end) == ("socketpair", "rdwr")
    child = run.of(model.ForkEvent, pid=run.pid)[0].child_pid
    [dup] = run.of(model.DupEvent, pid=child)
    assert (dup.fd_kind, dup.is_socket, dup.chan_id) == ("socketpair", False, pair.chan_id)
    assert watched.alerts(run.events) == []
