"""Reading a ring buffer from its memory (coi_sentinel/probes/ringbuf.py), on a file laid out as
the kernel maps a BPF ring buffer: the consumer page, the producer page, the data twice (the
kernel maps the data pages twice, so a record that wraps reads as one slice). The live rings
are read by every bpf-tier test."""

from __future__ import annotations

import mmap
import os
import struct

import pytest

from coi_sentinel.probes.ringbuf import BUSY_BIT, DISCARD_BIT, RingReader

pytestmark = pytest.mark.unit

PAGE = mmap.PAGESIZE
SIZE = PAGE          # the data area: one page, a power of two


class FakeRing:
    """A file with a ring buffer's layout; ``produce`` writes records as the kernel does."""

    def __init__(self, path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, 2 * PAGE + 2 * SIZE)
        self.prod = 0

    def _write_data(self, pos: int, data: bytes) -> None:
        for i, byte in enumerate(data):            # both copies of the data pages
            off = (pos + i) & (SIZE - 1)
            os.pwrite(self.fd, bytes([byte]), 2 * PAGE + off)
            os.pwrite(self.fd, bytes([byte]), 2 * PAGE + SIZE + off)

    def produce(self, sample: bytes, *, busy: bool = False, discard: bool = False) -> None:
        length = len(sample) | (BUSY_BIT if busy else 0) | (DISCARD_BIT if discard else 0)
        self._write_data(self.prod, struct.pack("<II", length, 0) + sample)
        self.prod += (len(sample) + 8 + 7) & ~7
        os.pwrite(self.fd, struct.pack("<Q", self.prod), PAGE)

    def consumer(self) -> int:
        return struct.unpack("<Q", os.pread(self.fd, 8, 0))[0]

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def ring(tmp_path):
    r = FakeRing(tmp_path / "ring")
    reader = RingReader(r.fd, SIZE)
    yield r, reader
    reader.close()
    r.close()


def test_records_are_read_in_order_and_their_space_given_back(ring):
    r, reader = ring
    samples = [b"a" * n for n in (1, 8, 13, 100)]
    for s in samples:
        r.produce(s)
    out: list[bytes] = []
    assert reader.read(out) == 4
    assert out == samples
    assert r.consumer() == r.prod and not reader.pending()
    assert reader.read(out) == 0


def test_a_limit_leaves_the_rest_for_the_next_read(ring):
    r, reader = ring
    for i in range(7):
        r.produce(b"%d" % i)
    first: list[bytes] = []
    assert reader.read(first, 3) == 3 and reader.pending()
    rest: list[bytes] = []
    assert reader.read(rest) == 4
    assert first + rest == [b"%d" % i for i in range(7)]


def test_a_busy_record_stops_the_read_and_a_discarded_one_is_skipped(ring):
    r, reader = ring
    r.produce(b"kept")
    r.produce(b"gone", discard=True)
    r.produce(b"next")
    r.produce(b"being written", busy=True)
    out: list[bytes] = []
    assert reader.read(out) == 2
    assert out == [b"kept", b"next"]
    assert reader.pending()            # the busy one waits for the next read


def test_a_record_that_wraps_around_the_end_reads_whole(ring):
    r, reader = ring
    out: list[bytes] = []
    filler = b"f" * (SIZE - 64 - 8)
    r.produce(filler)
    assert reader.read(out) == 1
    wrapping = bytes(range(200))      # starts 64 bytes before the end of the data area
    r.produce(wrapping)
    out.clear()
    assert reader.read(out) == 1
    assert out == [wrapping]


def test_a_size_that_is_not_a_power_of_two_is_refused(tmp_path):
    fd = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ValueError):
            RingReader(fd, 3000)
    finally:
        os.close(fd)
