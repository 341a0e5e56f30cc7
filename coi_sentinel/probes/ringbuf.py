"""A BPF ring buffer read straight from its memory: a batch of records per call, no callback
per record.

bcc hands each record to Python through a ctypes callback (and a wrapper of its own), which
cost more than decoding the record. The kernel maps a ring buffer's pages into the reader
(kernel/bpf/ringbuf.c; libbpf's ``ring_buffer__poll`` reads it the same way): a page with the
consumer position (ours to write), then a read-only page with the producer position followed
by the data pages mapped twice, so a record that wraps around the end reads as one slice.
Each record has an 8-byte header: its length, with a *busy* bit while the producer still
writes it and a *discard* bit for a record given up, then the sample, padded to 8 bytes.

Loads and stores here are plain ones; x86-64 orders them as the kernel's acquire/release
pairs need (a record seen as not busy has all its bytes visible). Other architectures are
refused: use bcc's callbacks there.
"""

from __future__ import annotations

import mmap
import platform
import struct

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

#: machines whose plain loads and stores are ordered as the ring buffer needs (TSO)
ORDERED_MACHINES = frozenset({"x86_64", "amd64", "AMD64"})


def supported() -> bool:
    return platform.machine() in ORDERED_MACHINES


class RingReader:
    """One ring buffer map (``map_fd``, ``size`` = its max_entries: a power of two)."""

    def __init__(self, map_fd: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"a ring buffer's size is a power of two, not {size}")
        page = mmap.PAGESIZE
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._cons.close()
            raise
        self._base = page
        self._mask = size - 1

    def pending(self) -> bool:
        """Records (or a record being written) wait in the ring."""
        return _U64.unpack_from(self._cons, 0)[0] < _U64.unpack_from(self._prod, 0)[0]

    def read(self, out: list[bytes], limit: int | None = None) -> int:
        """Append up to ``limit`` records (all that are complete without one) to ``out``, in
        ring order, and give their space back to the kernel. Returns how many were taken."""
        cons_map, data = self._cons, self._prod
        cons = _U64.unpack_from(cons_map, 0)[0]
        prod = _U64.unpack_from(data, 0)[0]
        base, mask = self._base, self._mask
        u32 = _U32.unpack_from
        append = out.append
        n = 0
        left = -1 if limit is None else limit
        while cons < prod and n != left:
            off = base + (cons & mask)
            length = u32(data, off)[0]
            if length & BUSY_BIT:
                break                   # still being written: the next read takes it
            size = length & ~(BUSY_BIT | DISCARD_BIT)
            cons += (size + HDR_SIZE + 7) & ~7
            if not length & DISCARD_BIT:
                append(data[off + HDR_SIZE:off + HDR_SIZE + size])
                n += 1
            if cons >= prod:
                prod = _U64.unpack_from(data, 0)[0]      # more may have come meanwhile
        _U64.pack_into(cons_map, 0, cons)
        return n

    def close(self) -> None:
        self._prod.close()
        self._cons.close()
