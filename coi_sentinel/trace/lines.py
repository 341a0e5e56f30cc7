"""Reading a trace file line by line, plain or gzip, with file and line numbers in every error.

Shared by :class:`~coi_sentinel.trace.reader.TraceReader` and the audit log's verifier, which
both need the raw bytes of each line and to know whether the last one is complete.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from typing import BinaryIO, Iterator

from ..errors import TraceError
from .format import GZIP_MAGIC

#: the longest line a reader accepts (bytes, newline excluded): the longest real ones (an exec
#: with its whole argv, a context record) are a few KiB; ``/dev/zero`` is one endless line
MAX_LINE_BYTES = 1 << 20

#: how much is read at once (lines are split out of each block)
BLOCK_BYTES = 1 << 16

#: the name that means standard input
STDIN = "-"


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a trace for reading; gzip is detected by content, so a renamed file still reads.

    Only regular files are read (a device such as ``/dev/zero`` never ends, a FIFO may never
    answer), or standard input when the path is ``-``."""
    name = os.fspath(path)
    if name == STDIN:
        f: BinaryIO = io.BufferedReader(io.FileIO(os.dup(sys.stdin.fileno()), "rb"))  # type: ignore[assignment]
        magic = f.peek(2)[:2]  # type: ignore[attr-defined]
    else:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)   # a FIFO must not block
        except OSError as err:
            raise TraceError(f"cannot open: {err.strerror}", source=name, reason="io",
                             errno=err.errno) from err
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                what = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
                raise TraceError(f"is {what}, not a regular file (use - to read standard input)",
                                 source=name, reason="io")
            os.set_blocking(fd, True)
            f = open(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        try:
            magic = f.read(2)
            f.seek(0)
        except OSError as err:
            f.close()
            raise TraceError(f"cannot read: {err.strerror}", source=name, reason="io",
                             errno=err.errno) from err
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def iter_lines(f: BinaryIO, source: str) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line number, line without its newline, complete)``; ``complete`` is False only
    for a last line that has no newline (a cut file, or a writer that died mid-line).

    A gzip stream that ends early or is corrupt raises :class:`TraceError` naming the line
    after the last one read (reason ``"truncated"`` or ``"gzip"``).
    """
    for first, lines, complete in iter_blocks(f, source):
        for lineno, raw in enumerate(lines, first):
            yield lineno, raw, complete


def iter_blocks(f: BinaryIO, source: str) -> Iterator[tuple[int, list[bytes], bool]]:
    """:func:`iter_lines` a block at a time: ``(number of the first line, the lines without
    their newline, complete)``, never an empty list; ``complete`` is False only for the last
    block when it is one line with no newline. The same lines come before the same errors,
    which name the line after the last one yielded (a hot loop iterates a list, with no
    generator step per line)."""
    lineno = 0
    # blocks split into lines: one C call for a few hundred lines, not a readline() each.
    # read1 asks the underlying stream once per call (a gzip stream decompresses as much per
    # call as readline would), so what is read before an error is the same, and is yielded
    read = getattr(f, "read1", f.read)
    tail = b""
    try:
        while block := read(BLOCK_BYTES):
            buf = tail + block if tail else block
            lines = buf.split(b"\n")
            tail = lines.pop()
            cut = None
            if len(buf) > MAX_LINE_BYTES:   # only then can a line be too long
                cut = next((i for i, raw in enumerate(lines) if len(raw) > MAX_LINE_BYTES), None)
                if cut is not None:
                    del lines[cut:]         # the lines before it are read, then it fails
            if lines:
                yield lineno + 1, lines, True
                lineno += len(lines)
            if cut is not None or len(tail) > MAX_LINE_BYTES:
                raise _too_long(source, lineno + 1)
        if tail:
            yield lineno + 1, [tail], False
            lineno += 1
    except EOFError as err:
        raise TraceError("truncated: the gzip stream ends early (the writer was killed, or the "
                         "file was cut)", source=source, line=lineno + 1, reason="truncated") from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise TraceError(f"corrupt gzip data: {err}", source=source, line=lineno + 1,
                         reason="gzip") from err
    except OSError as err:
        raise TraceError(f"cannot read: {err.strerror or err}", source=source, line=lineno + 1,
                         reason="io", errno=err.errno) from err


def _too_long(source: str, lineno: int) -> TraceError:
    return TraceError(f"line longer than {MAX_LINE_BYTES >> 20} MiB: not a trace line",
                      source=source, line=lineno, reason="long")
