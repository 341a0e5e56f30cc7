"""Reading a trace file line by line, plain or gzip, with file and line numbers in every error.

Shared by :class:`~coi_sentinel.trace.reader.TraceReader` and the audit log's verifier, which
both need the raw bytes of each line and to know whether the last one is complete.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import BinaryIO, Iterator

from ..errors import TraceError
from .format import GZIP_MAGIC


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a trace for reading; gzip is detected by content, so a renamed file still reads."""
    name = os.fspath(path)
    try:
        f = open(name, "rb")
    except OSError as err:
        raise TraceError(f"cannot open: {err.strerror}", source=name, reason="io",
                         errno=err.errno) from err
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
    lineno = 0
    try:
        for raw in f:
            lineno += 1
            if raw.endswith(b"\n"):
                yield lineno, raw[:-1], True
            else:
                yield lineno, raw, False
    except EOFError as err:
        raise TraceError("truncated: the gzip stream ends early (the writer was killed, or the "
                         "file was cut)", source=source, line=lineno + 1, reason="truncated") from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise TraceError(f"corrupt gzip data: {err}", source=source, line=lineno + 1,
                         reason="gzip") from err
    except OSError as err:
        raise TraceError(f"cannot read: {err.strerror or err}", source=source, line=lineno + 1,
                         reason="io", errno=err.errno) from err
