"""Exact counts and fields from real workloads, scoped to their own cgroup."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import textwrap

import pytest

from coi_sentinel.events import model

pytestmark = pytest.mark.bpf

N_EXEC = 31
N_CONNECT = 37
N_WRITES = 41
N_CYCLES = 13
N_RENAME = 19


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connects are refused
    return port


def test_exec_count_and_argv(watched, py):
    code = textwrap.dedent(f"""
        import os
        for i in range({N_EXEC}):
            pid = os.fork()
            if pid == 0:
                os.execv('/bin/true', ['/bin/true', 'arg-%d' % i, 'x' * i])
            os.waitpid(pid, 0)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    execs = run.of(model.ExecEvent, filename="/bin/true")
    assert len(execs) == N_EXEC
    assert sorted(e.argv for e in execs) == sorted(("/bin/true", f"arg-{i}", "x" * i) for i in range(N_EXEC))
    assert all(e.ppid == run.pid and e.errno == 0 and e.argc == 3 for e in execs)
    forks = run.of(model.ForkEvent, pid=run.pid)
    assert len(forks) == N_EXEC
    assert {f.child_pid for f in forks} == {e.pid for e in execs}
    exits = [e for e in run.of(model.ExitEvent) if e.pid in {x.pid for x in execs}]
    assert len(exits) == N_EXEC and all(e.exit_code == 0 for e in exits)
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_exec_carries_the_dynamic_loaders_environment(watched, py, tmp_path):
    """LD_* variables of the new program's environment, read from its stack after argv, in
    their order; the rest of the environment is not carried."""
    libc = next(p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6",
                            "/usr/lib/libc.so.6") if os.path.exists(p))
    code = textwrap.dedent(f"""
        import os, subprocess
        env = {{f'FILLER_{{i}}': 'x' * 20 for i in range(90)}}
        env.update(PATH='/usr/bin:/bin', LD_LIBRARY_PATH={str(tmp_path)!r}, LD_PRELOAD={libc!r},
                   SECRET_TOKEN='not-carried')
        subprocess.run(['/bin/true', 'with-env'], env=env, check=True)
        subprocess.run(['/bin/true', 'without'], env={{'PATH': '/usr/bin:/bin'}}, check=True)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    execs = {e.argv[1]: e for e in run.of(model.ExecEvent, filename="/bin/true")}
    assert execs["with-env"].env == (f"LD_LIBRARY_PATH={tmp_path}", f"LD_PRELOAD={libc}")
    assert execs["with-env"].ld_preload == libc and execs["with-env"].argv == ("/bin/true", "with-env")
    assert execs["without"].env == () and execs["without"].ld_preload == ""


def test_connect_count_and_address(watched, py):
    port = _closed_port()
    code = textwrap.dedent(f"""
        import socket
        for i in range({N_CONNECT}):
            s = socket.socket()
            try:
                s.connect(('127.0.0.1', {port}))
            except ConnectionRefusedError:
                pass
            s.close()
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    # the first connect to a destination is sent at once; repeats are counted in the kernel
    conns = run.of(model.ConnectEvent, dport=port)
    assert len(conns) == 1
    assert conns[0].family == "inet" and conns[0].daddr == "127.0.0.1"
    assert conns[0].errno == errno.ECONNREFUSED
    repeats = run.of(model.ConnectRepeatEvent, dport=port)
    assert all(r.daddr == "127.0.0.1" and r.errno == errno.ECONNREFUSED for r in repeats)
    assert len(conns) + sum(r.count for r in repeats) == N_CONNECT
    assert run.lost == 0                # nothing of this scope lost in the kernel


N_DGRAMS = 23


@pytest.mark.parametrize("call", ["sendto", "sendmsg"])
def test_datagram_sends_without_connect_are_connects_with_exact_bytes(watched, py, call):
    """A UDP socket that never connects: the first send to a destination is a connect event
    (sendto), the repeats are counted in the kernel, the bytes land in net_send at close."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    send = (f"s.sendto(b'k' * (i + 1), ('127.0.0.1', {port}))" if call == "sendto" else
            f"s.sendmsg([b'k' * (i + 1)], [], 0, ('127.0.0.1', {port}))")
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range({N_DGRAMS}):
            {send}
        s.close()
    """)
    try:
        run = watched.run([py, "-c", code])
    finally:
        rx.close()
    assert run.returncode == 0, run.stderr
    conns = run.of(model.ConnectEvent, dport=port)
    assert len(conns) == 1
    assert conns[0].sendto and conns[0].daddr == "127.0.0.1" and conns[0].errno == 0
    repeats = run.of(model.ConnectRepeatEvent, dport=port)
    assert 1 + sum(r.count for r in repeats) == N_DGRAMS
    sent = [x for x in run.of(model.NetSendEvent) if x.dport == port]
    assert sum(x.bytes for x in sent) == N_DGRAMS * (N_DGRAMS + 1) // 2
    assert sum(x.calls for x in sent) == N_DGRAMS
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_write_bytes_exact_and_aggregated(watched, py, tmp_path):
    target = tmp_path / "out.bin"
    code = textwrap.dedent(f"""
        f = open({str(target)!r}, 'wb', buffering=0)
        for i in range({N_WRITES}):
            f.write(b'a' * (100 + i))
        f.close()
        for i in range({N_CYCLES}):
            with open({str(target)!r}, 'ab', buffering=0) as f:
                f.write(b'b' * 7)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    path = str(target)
    # first open of each (path, kind) is sent; every later one is only counted
    opens = run.of(model.FileOpenEvent, path=path)
    assert len(opens) == 1 and opens[0].kind == "write"
    sums = run.of(model.FileWriteEvent, path=path)
    total_opens = len(opens) + sum(s.opens for s in sums)
    assert total_opens == 1 + N_CYCLES
    assert sum(s.writes for s in sums) == N_WRITES + N_CYCLES
    expected = sum(100 + i for i in range(N_WRITES)) + 7 * N_CYCLES
    assert sum(s.bytes for s in sums) == expected == target.stat().st_size
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_rename_unlink_chmod(watched, py, tmp_path):
    code = textwrap.dedent(f"""
        import os
        d = {str(tmp_path)!r}
        open(os.path.join(d, 'f0'), 'w').close()
        for i in range({N_RENAME}):
            os.rename(os.path.join(d, 'f%d' % i), os.path.join(d, 'f%d' % (i + 1)))
        os.chmod(os.path.join(d, 'f{N_RENAME}'), 0o4755)
        os.unlink(os.path.join(d, 'f{N_RENAME}'))
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    renames = run.of(model.RenameEvent)
    assert [(r.oldpath, r.newpath) for r in renames] == [
        (str(tmp_path / f"f{i}"), str(tmp_path / f"f{i + 1}")) for i in range(N_RENAME)]
    chmods = run.of(model.ChmodEvent, path=str(tmp_path / f"f{N_RENAME}"))
    assert len(chmods) == 1 and chmods[0].sets_setuid and chmods[0].mode == 0o4755
    assert len(run.of(model.UnlinkEvent, path=str(tmp_path / f"f{N_RENAME}"))) == 1


def test_workload_outside_scope_is_not_seen(watched, py):
    code = "import os\nfor i in range(5):\n    os.spawnv(os.P_WAIT, '/bin/true', ['true'])\n"
    run = watched.run([py, "-c", code], scoped=False)
    assert run.returncode == 0
    assert run.events == []


def test_connect_to_metadata_from_netns_without_route(watched, py):
    unshare = "/usr/bin/unshare"
    if not os.path.exists(unshare):
        pytest.skip("needs unshare (util-linux)")
    code = textwrap.dedent("""
        import socket, sys
        s = socket.socket()
        try:
            s.connect(('169.254.169.254', 80))
        except OSError as e:
            sys.exit(e.errno)
    """)
    run = watched.run([unshare, "-n", py, "-c", code])
    assert run.returncode == errno.ENETUNREACH, run.stderr
    conns = run.of(model.ConnectEvent, daddr="169.254.169.254", dport=80)
    assert len(conns) == 1
    assert conns[0].errno == errno.ENETUNREACH


def test_short_lived_process_seen_with_argv_and_parent(watched, tmp_path):
    src = tmp_path / "quick.c"
    src.write_text(textwrap.dedent("""
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void) {
            pid_t p = fork();
            if (p == 0) { execl("/bin/true", "true", "quick-one", (char *)0); _exit(127); }
            int st; waitpid(p, &st, 0);
            return 0;
        }
    """))
    exe = tmp_path / "quick"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    run = watched.run([str(exe)])
    assert run.returncode == 0
    execs = run.of(model.ExecEvent, filename="/bin/true")
    assert len(execs) == 1
    child = execs[0]
    # argv literals live in the parent's read-only pages, never touched by the child before exec
    assert child.argv == ("true", "quick-one")
    assert child.ppid == run.pid
    exits = run.of(model.ExitEvent, pid=child.pid)
    assert len(exits) == 1
    lifetime_ms = (exits[0].ts_ns - child.ts_ns) / 1e6
    print(f"exec -> exit of the short-lived child: {lifetime_ms:.3f} ms")


def test_failed_exec_reports_errno_and_argv(watched, py, tmp_path):
    missing = str(tmp_path / "does-not-exist")
    code = f"import os\ntry:\n    os.execv({missing!r}, ['nope', 'a1'])\nexcept OSError:\n    pass\n"
    run = watched.run([py, "-c", code])
    failed = run.of(model.ExecEvent, filename=missing)
    assert len(failed) == 1
    assert failed[0].errno == errno.ENOENT and failed[0].argv == ("nope", "a1")


def test_exit_code_and_fatal_signal(watched, py):
    run = watched.run([py, "-c", "import os, signal, sys\n"
                       "p = os.fork()\n"
                       "if p == 0:\n    os.kill(os.getpid(), signal.SIGKILL)\n"
                       "os.waitpid(p, 0)\nsys.exit(7)\n"])
    assert run.returncode == 7
    assert run.of(model.ExitEvent, pid=run.pid)[0].exit_code == 7
    child = run.of(model.ForkEvent, pid=run.pid)[0].child_pid
    killed = run.of(model.ExitEvent, pid=child)[0]
    assert killed.signal == 9 and killed.exit_code == -1


def test_socket_dup_onto_stdio_and_bytes_sent(watched, py):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    code = textwrap.dedent(f"""
        import os, socket
        s = socket.create_connection(('127.0.0.1', {port}))
        os.dup2(s.fileno(), 0)
        os.dup2(s.fileno(), 1)
        for i in range(11):
            s.send(b'z' * 50)
        os.write(1, b'via-stdout')
        s.close()
    """)
    try:
        run = watched.run([py, "-c", code])
        conn, _ = srv.accept()
        conn.close()
    finally:
        srv.close()
    assert run.returncode == 0, run.stderr
    dups = [d for d in run.of(model.DupEvent) if d.pid == run.pid]
    assert [(d.newfd, d.is_socket, d.dport) for d in dups] == [(0, True, port), (1, True, port)]
    sent = [s for s in run.of(model.NetSendEvent) if s.pid == run.pid and s.dport == port]
    assert sum(s.bytes for s in sent) == 11 * 50 + len(b"via-stdout")


def test_a_closed_fd_number_reused_by_another_kind_counts_for_the_new_one(watched, py, tmp_path):
    """close() forgets an fd in every per-fd map, on low fds through the fd-mark bits and
    above them (fd 100) through every map: a file opened on a closed socket's number counts
    its bytes on the file, a socket on a closed file's number on the socket."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    target = tmp_path / "reused.bin"
    code = textwrap.dedent(f"""
        import os, socket
        def sock_on(fd):
            s = socket.create_connection(('127.0.0.1', {port}))
            if s.fileno() == fd:
                return s.detach()
            os.dup2(s.fileno(), fd)
            s.close()
            return fd
        def file_on(fd):
            f = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if f != fd:
                os.dup2(f, fd)
                os.close(f)
            return fd
        low = os.open('/dev/null', os.O_RDONLY)   # the lowest free number, then freed
        os.close(low)
        for fd in (low, 100):
            s = sock_on(fd); os.write(s, b's' * 5); os.close(s)      # socket, then file
            f = file_on(fd); os.write(f, b'f' * 40); os.close(f)
            f = file_on(fd); os.write(f, b'g' * 3); os.close(f)      # file, then socket
            s = sock_on(fd); os.write(s, b't' * 7); os.close(s)
    """)
    try:
        run = watched.run([py, "-c", code])
    finally:
        srv.close()
    assert run.returncode == 0, run.stderr
    sums = run.of(model.FileWriteEvent, path=str(target))
    assert sum(s.bytes for s in sums) == 2 * (40 + 3) == target.stat().st_size
    sent = [s for s in run.of(model.NetSendEvent) if s.pid == run.pid and s.dport == port]
    assert sorted(s.bytes for s in sent) == [5, 5, 7, 7]
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_a_closed_file_fd_reused_by_a_pipe_or_another_file(watched, py, tmp_path):
    """A closed file's fd entry is kept, as closed, and reopened in place when the same file
    comes back on the number (fd_marks in scope.h): a pipe end on the number counts nothing
    on the file, the same file again counts on it, another file on the other file. On a low
    fd by close and the kernel's reuse of the lowest number, on fd 100 by dup2."""
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    code = textwrap.dedent(f"""
        import os
        def file_on(fd, path):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if f != fd:
                os.dup2(f, fd)
                os.close(f)
            return fd
        def pipe_on(fd):
            r, w = os.pipe()
            if w != fd:
                os.dup2(w, fd)
                os.close(w)
            return r, fd
        low = os.open('/dev/null', os.O_RDONLY)   # held: the pipe's read end goes above it
        f = os.open({str(a)!r}, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(f)
        os.close(low)                             # free: low, f (the pipe gets r=low, w=f)
        for fd in (f, 100):
            x = file_on(fd, {str(a)!r}); os.write(x, b'a' * 11); os.close(x)
            r, w = pipe_on(fd)
            assert fd != 100 or w == fd
            os.write(w, b'p' * 13); os.close(w); os.close(r)
            x = file_on(fd, {str(a)!r}); os.write(x, b'a' * 5); os.close(x)    # the same file
            x = file_on(fd, {str(b)!r}); os.write(x, b'b' * 7); os.close(x)    # another one
            r, w = pipe_on(fd)
            os.write(w, b'q' * 17); os.close(w); os.close(r)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    sums_a = run.of(model.FileWriteEvent, path=str(a))
    sums_b = run.of(model.FileWriteEvent, path=str(b))
    assert sum(s.bytes for s in sums_a) == 2 * (11 + 5) == a.stat().st_size
    assert sum(s.writes for s in sums_a) == 4
    assert sum(s.bytes for s in sums_b) == 2 * 7 == b.stat().st_size
    assert sum(s.writes for s in sums_b) == 2
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_exec_through_an_fd_reusing_a_closed_unlinked_files_number_is_not_deleted(watched, py, tmp_path):
    """An fd opened on a file this process wrote, whose path was unlinked since, execs a file
    without a name (EXEC_UNLINKED), in the process and in a child it forked. Once closed, its
    kept entry (see fd_marks in scope.h) says nothing of the next file on the number."""
    dropped = tmp_path / "dropped.bin"
    code = textwrap.dedent(f"""
        import os
        body = open('/bin/true', 'rb').read()
        w = os.open({str(dropped)!r}, os.O_WRONLY | os.O_CREAT, 0o755)
        os.write(w, body)
        os.close(w)
        def run(fd, name):
            pid = os.fork()
            if pid == 0:
                os.execve(fd, [name], {{}})
            os.waitpid(pid, 0)
        r = os.open({str(dropped)!r}, os.O_RDONLY)   # the written file's number again
        assert r == w
        os.unlink({str(dropped)!r})
        run(r, 'unlinked')
        os.close(r)
        t = os.open('/bin/true', os.O_RDONLY)        # the same number: not a written file
        assert t == w
        run(t, 'named-child')
        os.execve(t, ['named-self'], {{}})
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    execs = {e.argv[0]: e for e in run.of(model.ExecEvent) if e.argv[:1] in
             (("unlinked",), ("named-child",), ("named-self",))}
    assert sorted(execs) == ["named-child", "named-self", "unlinked"]
    assert all(e.via_fd for e in execs.values())
    assert execs["unlinked"].deleted
    assert not execs["named-child"].deleted and not execs["named-self"].deleted


def test_exec_from_memfd_is_flagged(watched, py):
    code = textwrap.dedent("""
        import os
        fd = os.memfd_create('payload', 0)
        with open('/bin/true', 'rb') as f:
            os.write(fd, f.read())
        pid = os.fork()
        if pid == 0:
            os.execve(fd, ['payload'], {})
        os.waitpid(pid, 0)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    memfd = run.of(model.PrivEvent, op="memfd_create")
    assert len(memfd) == 1 and memfd[0].detail == "payload"
    execs = [e for e in run.of(model.ExecEvent) if e.argv == ("payload",)]
    assert len(execs) == 1 and execs[0].from_memfd and execs[0].via_fd


def test_sensitive_read_is_reported(watched, py, tmp_path):
    secret = tmp_path / "creds" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text("k")
    other = tmp_path / "creds" / "notes.txt"
    other.write_text("n")
    watched.probes.set_sensitive([str(tmp_path / "creds") + "/id_"], ["/notes.txt.never"])
    try:
        run = watched.run([py, "-c", f"open({str(secret)!r}).read(); open({str(other)!r}).read()"])
    finally:
        watched.probes.set_sensitive([], [])
    opens = run.of(model.FileOpenEvent, kind="sensitive")
    assert [o.path for o in opens] == [str(secret)]


def test_kill_policy_memfd_exec_dies_before_running(watched, py, tmp_path):
    """bpf_send_signal from the exec probe: the payload never runs a single instruction."""
    marker = tmp_path / "payload-ran"
    script = f"#!/bin/sh\ntouch {marker}\n"
    code = textwrap.dedent(f"""
        import os, sys
        fd = os.memfd_create('payload', 0)
        os.write(fd, {script.encode()!r})
        pid = os.fork()
        if pid == 0:
            os.execve(fd, ['payload'], {{}})
        _, status = os.waitpid(pid, 0)
        sys.exit(os.WTERMSIG(status) if os.WIFSIGNALED(status) else 100 + os.WEXITSTATUS(status))
    """)
    run = watched.run([py, "-c", code], kill_policy={"memfd_exec": True})
    assert run.returncode == 9, run.stderr  # the child died of SIGKILL
    assert not marker.exists()
    execs = [e for e in run.of(model.ExecEvent) if e.from_memfd]
    assert len(execs) == 1 and execs[0].killed
    assert watched.probes.kill_counts().get("memfd_exec", 0) >= 1


def test_kill_policy_blocked_connect_never_sends(watched, py):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket()
        s.connect(('127.0.0.1', {port}))
        s.sendall(b'stolen secrets')
    """)
    try:
        run = watched.run([py, "-c", code], kill_policy={"blocked": ["127.0.0.0/8"]})
        received = b""
        try:
            conn, _ = srv.accept()
            conn.settimeout(0.5)
            try:
                received = conn.recv(100)
            except OSError:
                pass
            conn.close()
        except socket.timeout:
            pass
    finally:
        srv.close()
    assert run.returncode == -9
    assert received == b""
    conns = run.of(model.ConnectEvent, dport=port)
    assert len(conns) == 1 and conns[0].killed


def test_kill_policy_is_per_scope_and_port_based(watched, py):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}))\ns.close()\n"
    try:
        ok = watched.run([py, "-c", code], kill_policy={"ports": [port + 1 if port < 65535 else 1]})
        killed = watched.run([py, "-c", code], kill_policy={"ports": [port]})
        free = watched.run([py, "-c", code])
    finally:
        srv.close()
    assert ok.returncode == 0 and free.returncode == 0
    assert killed.returncode == -9


def test_every_hook_whose_tracepoint_exists_is_attached(watched):
    """A program the verifier refuses is only a 'missing' hook at run time: fail here instead."""
    refused = [(h.tracepoint, why) for h, why in watched.probes.coverage.missing
               if why != "tracepoint not in this kernel"]
    assert refused == []
    assert len(watched.probes.coverage.attached) >= 60
