"""fds passed over a unix socket (sendmsg/recvmsg with SCM_RIGHTS, the wave 8 audit's blind
spot in docs/events.md): the receiver's fd is what the sender's was. A connected socket passed
to a process that puts it on stdio is a socket on stdio, kill policy included; a file or a pipe
end passed so is no socket. Each workload runs the real system calls in a scoped cgroup."""

from __future__ import annotations

import socket
import textwrap

import pytest

from coi_sentinel.events import model

pytestmark = pytest.mark.bpf


@pytest.fixture
def listener():
    """a TCP listener on loopback in the test process, outside the watched cgroup"""
    srv = socket.create_server(("127.0.0.1", 0))
    yield srv.getsockname()[1]
    srv.close()


# A (the parent) connects and passes the socket over a socketpair; B (its child) receives it,
# puts it on 0, 1 and 2 and execs a shell. B never connects and never dups a socket it connected.
RECV_FDS = textwrap.dedent("""
    import array, socket
    def recv_fds(sock, flags=0):
        # socket.recv_fds does not pass its flags on to recvmsg (CPython 3.11): recvmsg itself
        msg, anc, _, _ = sock.recvmsg(16, socket.CMSG_LEN(4 * 4), flags)
        return list(array.array('i', anc[0][2]))
""")

PASS = RECV_FDS + textwrap.dedent("""
    import os, socket, sys
    how, port = sys.argv[1], int(sys.argv[2])
    if how.startswith('path'):          # a unix socket on a path: connect and accept, no pair
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(sys.argv[3])
        srv.listen()
    else:
        a, b = socket.socketpair()
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        if how.startswith('path'):
            b, _ = srv.accept()
            if how == 'path-late':
                import time; time.sleep(1.5)    # the message waits longer than the probes keep it
        else:
            a.close()
        if how == 'onto-stdin':
            os.close(0)                 # the received fd lands on 0 itself
        flags = socket.MSG_CMSG_CLOEXEC if how == 'cloexec' else 0
        fds = recv_fds(b, flags)
        fd = fds[-1]
        for n in (0, 1, 2):
            if n != fd:
                os.dup2(fd, n)
        os.execv('/bin/sh', ['sh', '-c', 'exit 0'])
    if how.startswith('path'):
        a = socket.socket(socket.AF_UNIX)
        a.connect(sys.argv[3])
    s = socket.create_connection(('127.0.0.1', port))
    fds = [s.fileno()]
    if how == 'several':                # the socket last of three fds in one message
        fds = [os.open('/dev/null', os.O_RDONLY), w, s.fileno()]
    if how == 'sendmmsg':               # one message through sendmmsg, by libc
        import ctypes, struct
        data = ctypes.create_string_buffer(b'x')
        iov = ctypes.create_string_buffer(struct.pack('<QQ', ctypes.addressof(data), 1))
        cmsg = ctypes.create_string_buffer(struct.pack('<Qiii4x', 20, socket.SOL_SOCKET,
                                                       socket.SCM_RIGHTS, fds[0]))
        # struct mmsghdr: msghdr (name, namelen, iov, iovlen, control, controllen, flags), len
        msg = ctypes.create_string_buffer(struct.pack('<QI4xQQQQi4xI4x', 0, 0, ctypes.addressof(iov),
                                                      1, ctypes.addressof(cmsg), 24, 0, 0))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.sendmmsg(a.fileno(), msg, 1, 0) == 1, ctypes.get_errno()
    else:
        socket.send_fds(a, [b'x'], fds)
    s.close()
    _, status = os.waitpid(child, 0)
    print(child, fds[-1], len(fds), status)
""")


@pytest.mark.parametrize("how", ["dup2", "cloexec", "several", "onto-stdin", "sendmmsg", "path"])
def test_a_socket_passed_over_scm_rights_is_a_socket_on_stdio(watched, py, listener, how, tmp_path):
    run = watched.run([py, "-c", PASS, how, str(listener), str(tmp_path / "sock")])
    assert run.returncode == 0, run.stderr
    child, sent_fd, nfds, status = map(int, run.stdout.split())
    assert status == 0
    passes = run.of(model.PrivEvent, op="scm_rights")
    assert [(e.pid, e.arg0, e.arg1, e.errno) for e in passes] == [(child, run.pid, nfds, 0)]
    dups = {e.newfd: e for e in run.of(model.DupEvent, pid=child)}
    assert set(dups) == {0, 1, 2}
    for d in dups.values():
        assert d.is_socket and d.fd_kind == "socket", d
        assert (d.daddr, d.dport) == ("127.0.0.1", listener), d
    if how == "onto-stdin":
        assert dups[0].oldfd == sent_fd               # the sender's fd number: no dup at all
    execs = run.of(model.ExecEvent, pid=child, filename="/bin/sh")
    assert len(execs) == 1 and execs[0].stdio_socket
    rules = {a.rule for a in watched.alerts(run.events)}
    assert {"reverse_shell_socket_dup", "reverse_shell_exec_socket_stdio"} <= rules


def test_a_message_on_a_path_socket_received_late_gives_no_state(watched, py, listener, tmp_path):
    """On a unix socket the probes did not see made (connect/accept on a path) the message
    waits in the scope's slot, which every such socket of the scope shares: received more than
    a second later, it is not taken for the sender's (no state, no sender), never guessed."""
    run = watched.run([py, "-c", PASS, "path-late", str(listener), str(tmp_path / "sock")])
    assert run.returncode == 0, run.stderr
    child, _, _, status = map(int, run.stdout.split())
    assert status == 0
    passes = run.of(model.PrivEvent, op="scm_rights")
    assert [(e.pid, e.arg0, e.arg1) for e in passes] == [(child, 0, 1)]
    dups = run.of(model.DupEvent, pid=child)
    assert {d.newfd for d in dups} == {0, 1, 2} and not any(d.is_socket for d in dups)


def test_a_file_and_a_pipe_passed_over_scm_rights_are_no_sockets(watched, py, tmp_path):
    """A file opened for writing and a pipe's write end in one message: the receiver's copies
    on 1 and 2 are the file (its writes count on the file) and the pipe end, no socket, and
    its exec has no socket on stdio."""
    target = tmp_path / "out.txt"
    code = RECV_FDS + textwrap.dedent("""
        import os, socket, sys
        a, b = socket.socketpair()
        r, w = os.pipe()
        f = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        child = os.fork()
        if child == 0:
            a.close()
            fds = recv_fds(b)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            os.write(1, b'passed')
            os.execv('/bin/true', ['true'])
        socket.send_fds(a, [b'x'], [f, w])
        os.close(f)
        _, status = os.waitpid(child, 0)
        print(child, status)
    """)
    run = watched.run([py, "-c", code, str(target)])
    assert run.returncode == 0, run.stderr
    child, status = map(int, run.stdout.split())
    assert status == 0 and target.read_bytes() == b"passed"
    [passed] = run.of(model.PrivEvent, op="scm_rights")
    assert (passed.pid, passed.arg0, passed.arg1) == (child, run.pid, 2)
    dups = {e.newfd: e for e in run.of(model.DupEvent, pid=child)}
    assert set(dups) == {1, 2}
    assert not dups[1].is_socket and dups[1].fd_kind == "other"
    assert not dups[2].is_socket and (dups[2].fd_kind, dups[2].chan_end) == ("pipe", "write")
    pipes = [c for c in run.of(model.ChanEvent, pid=run.pid) if c.op == "pipe"]
    assert len(pipes) == 1 and dups[2].chan_id == pipes[0].chan_id
    execs = run.of(model.ExecEvent, pid=child, filename="/bin/true")
    assert len(execs) == 1 and not execs[0].stdio_socket
    sums = run.of(model.FileWriteEvent, path=str(target))
    assert sum(s.bytes for s in sums) == len(b"passed")


def test_a_socket_received_close_on_exec_onto_stdin_is_gone_after_exec(watched, py, listener):
    """MSG_CMSG_CLOEXEC onto a closed fd 0: the receipt itself puts the socket on stdin (a dup
    with is_socket); the exec closes it, and the file the new program opens on fd 0 is no
    socket when it is dup'ed onto 1."""
    code = RECV_FDS + textwrap.dedent("""
        import fcntl, os, socket, sys
        a, b = socket.socketpair()
        child = os.fork()
        if child == 0:
            a.close()
            os.close(0)
            fds = recv_fds(b, socket.MSG_CMSG_CLOEXEC)
            assert fds == [0] and fcntl.fcntl(0, fcntl.F_GETFD) == fcntl.FD_CLOEXEC, fds
            after = "import os; assert os.open('/dev/null', os.O_RDONLY) == 0; os.dup2(0, 1)"
            os.execv(sys.executable, [sys.executable, '-c', after])
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
        socket.send_fds(a, [b'x'], [s.fileno()])
        _, status = os.waitpid(child, 0)
        print(child, status)
    """)
    run = watched.run([py, "-c", code, str(listener)])
    assert run.returncode == 0, run.stderr
    child, status = map(int, run.stdout.split())
    assert status == 0, run.stderr
    dups = run.of(model.DupEvent, pid=child)
    assert [(d.newfd, d.is_socket, d.dport) for d in dups] == [(0, True, listener), (1, False, 0)]


def test_two_messages_waiting_at_once_give_no_state(watched, py, listener, tmp_path):
    """A file, then a socket, sent before the receiver reads either: which message a receipt
    brings is not known to the probes, so neither receipt gets a state (never the file's state
    for the socket or the socket's for the file); both are scm_rights records with no sender."""
    code = RECV_FDS + textwrap.dedent("""
        import os, socket, sys
        a, b = socket.socketpair()
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            a.close()
            os.read(r, 1)                       # both messages are queued
            got = [recv_fds(b)[0] for _ in range(2)]
            os.dup2(got[0], 1)
            os.dup2(got[1], 0)
            os.execv('/bin/sh', ['sh', '-c', 'exit 0'])
        f = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
        socket.send_fds(a, [b'f'], [f])
        socket.send_fds(a, [b's'], [s.fileno()])
        os.write(w, b'x')
        _, status = os.waitpid(child, 0)
        print(child, status)
    """)
    run = watched.run([py, "-c", code, str(listener), str(tmp_path / "f")])
    assert run.returncode == 0, run.stderr
    child, status = map(int, run.stdout.split())
    assert status == 0
    passes = run.of(model.PrivEvent, op="scm_rights")
    assert [(e.pid, e.arg0, e.arg1) for e in passes] == [(child, 0, 1), (child, 0, 1)]
    dups = {d.newfd: d for d in run.of(model.DupEvent, pid=child)}
    assert set(dups) == {0, 1} and not dups[0].is_socket and not dups[1].is_socket
    assert dups[0].fd_kind == dups[1].fd_kind == "other"
    execs = run.of(model.ExecEvent, pid=child, filename="/bin/sh")
    assert len(execs) == 1 and not execs[0].stdio_socket
