"""The entries of the hottest hooked system calls taken by number in the raw sys_enter program
(bpf/priv.bpf.c dispatch_entry, hooks.DISPATCHED): their syscalls:sys_enter_* tracepoints stay
detached, the records are what the tracepoints gave, and a 32-bit call that has one of those
numbers is not taken for the 64-bit call."""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from coi_sentinel.events import model
from coi_sentinel.probes.hooks import DISPATCHED

pytestmark = pytest.mark.bpf

N_WRITES = 7        # on the socket, i + 1 bytes each
N_FILE_WRITES = 11  # to the file: write, writev and pwrite64 in turn, 5 bytes each

# read(fd, NULL, 0) as a 32-bit call through int $0x80 from this 64-bit process: i386's read is
# number 3, the 64-bit close's number. x86-64 machine code, called as long f(int fd):
READ32 = bytes([
    0x53,                           # push rbx          (callee-saved)
    0xb8, 0x03, 0x00, 0x00, 0x00,   # mov eax, 3        (i386 read)
    0x89, 0xfb,                     # mov ebx, edi      (fd)
    0x31, 0xc9,                     # xor ecx, ecx      (buffer NULL)
    0x31, 0xd2,                     # xor edx, edx      (0 bytes)
    0xcd, 0x80,                     # int 0x80
    0x5b,                           # pop rbx
    0xc3,                           # ret
])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the entries are dispatched on x86-64")
def test_hot_entries_come_from_raw_sys_enter_and_a_32_bit_read_is_no_close(watched, py, tmp_path):
    b = watched.probes.bpf
    for tp in ("syscalls:sys_enter_openat", "syscalls:sys_enter_write", "syscalls:sys_enter_close",
               "syscalls:sys_enter_connect"):
        assert tp.encode() not in b.tracepoint_fds          # no program of ours on it
        assert tp.replace("enter", "exit").encode() in b.tracepoint_fds or tp.endswith("close")
    assert b"sys_enter" in b.raw_tracepoint_fds
    dispatched = {h.tracepoint for h, _ in watched.probes.coverage.dispatched}
    assert dispatched == set(DISPATCHED["x86_64"])

    rx = socket.create_server(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    target = tmp_path / "out.bin"
    code = textwrap.dedent(f"""
        import ctypes, mmap, os, socket
        page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write({READ32!r})
        read32 = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_int)(
            ctypes.addressof(ctypes.c_char.from_buffer(page)))
        s = socket.create_connection(('127.0.0.1', {port}))
        assert read32(s.fileno()) == 0          # a 32-bit read, not a close of the socket
        for i in range({N_WRITES}):
            os.write(s.fileno(), b'n' * (i + 1))
        s.close()
        fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        assert read32(fd) == -9                 # EBADF: write-only; not a close either
        for i in range({N_FILE_WRITES}):
            if i % 3 == 0:
                os.write(fd, b'fffff')
            elif i % 3 == 1:
                os.writev(fd, [b'ff', b'fff'])
            else:
                os.pwrite(fd, b'fffff', 5 * i)
                os.lseek(fd, 5 * i + 5, os.SEEK_SET)
        os.close(fd)
    """)
    try:
        run = watched.run([py, "-c", code])
    finally:
        rx.close()
    assert run.returncode == 0, run.stderr
    conns = run.of(model.ConnectEvent, pid=run.pid, dport=port)
    assert [(c.daddr, c.errno) for c in conns] == [("127.0.0.1", 0)]
    # the socket's state outlived the 32-bit read: its writes counted, its totals sent at close
    sent = run.of(model.NetSendEvent, pid=run.pid, dport=port)
    assert sum(x.bytes for x in sent) == N_WRITES * (N_WRITES + 1) // 2
    assert sum(x.calls for x in sent) == N_WRITES
    opens = run.of(model.FileOpenEvent, pid=run.pid, path=str(target))
    assert [(o.kind, o.flags & 3, o.mode, o.dirfd) for o in opens] == [("write", os.O_WRONLY, 0o600, -100)]
    sums = run.of(model.FileWriteEvent, pid=run.pid, path=str(target))
    assert sum(s.writes for s in sums) == N_FILE_WRITES
    assert sum(s.bytes for s in sums) == 5 * N_FILE_WRITES == target.stat().st_size
    assert run.lost == 0
