"""Where an audit log's files are and what their ends say.

A log is named by the path of its *active* file (a session's
``~/.local/state/coi-sentinel/audit/agent-1.jsonl``, or whatever ``watch --output`` was given).
Rotated files sit beside it as
``agent-1.000001.jsonl``, ``agent-1.000002.jsonl``, ... (numbered in the order they were set
aside, optionally gzipped afterwards: ``agent-1.000001.jsonl.gz``). The order that counts for
verification is the chain's own (each header's ``chain.file``), not the names.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import AuditError, TraceError
from ..trace.format import KIND
from ..trace.lines import iter_lines, open_binary
from .chain import unseal

_SESSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def session_log_path(session: str, log_dir: str | os.PathLike[str]) -> Path:
    """The active audit file of a session in ``log_dir``: ``<log_dir>/<session>.jsonl`` (as
    :func:`coi_sentinel.host.paths.audit_log` names it)."""
    if not _SESSION_NAME.fullmatch(session) or ".." in session:
        raise AuditError(f"bad session name {session!r}")
    return Path(log_dir) / f"{session}.jsonl"


def _split(path: Path) -> tuple[str, str]:
    stem, _dot, ext = path.name.partition(".")
    return stem, ext


def rotated_path(path: str | os.PathLike[str], number: int) -> Path:
    p = Path(path)
    stem, ext = _split(p)
    return p.with_name(f"{stem}.{number:06d}" + (f".{ext}" if ext else ""))


def rotated_files(path: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The rotated files of the log whose active file is ``path``, by number."""
    p = Path(path)
    stem, ext = _split(p)
    pattern = re.compile(re.escape(stem) + r"\.(\d{6,})" + (r"\." + re.escape(ext) if ext else "")
                         + r"(\.gz)?")
    try:
        names = os.listdir(p.parent)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise AuditError(f"cannot list {p.parent}: {err.strerror}", path=str(p.parent)) from err
    found = [(int(m.group(1)), p.parent / name) for name in names
             if (m := pattern.fullmatch(name)) is not None]
    return sorted(found)


def next_number(path: str | os.PathLike[str]) -> int:
    files = rotated_files(path)
    return files[-1][0] + 1 if files else 1


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """All files of a log, rotated first (by number) then the active file, as they exist."""
    p = Path(path)
    out = [f for _n, f in rotated_files(p)]
    if p.exists():
        out.append(p)
    return out


@dataclass(slots=True)
class Tail:
    """What the start and end of an audit file say, to continue its chain in a new file."""

    path: Path
    chain_id: str
    index: int                 # the file's chain.file
    last_n: int | None         # _n of the last complete line (None: no usable sealed line)
    last_h: str | None
    closed: bool               # the last complete line is a footer
    partial: bool              # bytes after the last newline: the writer died mid-line
    problem: str | None = None


def read_header(path: Path) -> dict[str, Any]:
    """The header of an audit file; AuditError if the file is not one."""
    try:
        with open_binary(path) as f:
            first = f.readline()
    except (OSError, TraceError) as err:
        raise AuditError(f"cannot read {path}: {err}", path=str(path)) from err
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        header = None
    if (not isinstance(header, dict) or header.get("record") != "header"
            or header.get("kind") != KIND or not isinstance(header.get("chain"), dict)):
        raise AuditError(f"{path} is not a coi-sentinel audit log", path=str(path),
                         hint="move it away or choose another --output")
    return header


def unfinished_header(path: Path) -> bool:
    """A file holding only the start of a header line: a writer died creating it."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b"\n" not in head and head.startswith(b'{"record":"header"') and len(head) < 1 << 16


def read_tail(path: Path) -> Tail:
    header = read_header(path)
    chain = header["chain"]
    last, partial = _last_complete_line(path)
    tail = Tail(path=path, chain_id=str(chain.get("id")), index=int(chain.get("file", 0)),
                last_n=None, last_h=None, closed=False, partial=partial)
    sealed = unseal(last) if last is not None else None
    if sealed is None:
        tail.problem = "its last complete line has no chain hash"
        return tail
    numbered, tail.last_n, tail.last_h = sealed
    tail.closed = numbered.startswith(b'{"record":"footer"')
    return tail


def _last_complete_line(path: Path) -> tuple[bytes | None, bool]:
    """(last line ending in a newline, whether bytes follow it). Plain files are read from the
    end; gzip files are read through."""
    with open_binary(path) as f:
        if isinstance(f, gzip.GzipFile):
            return _last_line_streamed(f, str(path))
        size = f.seek(0, os.SEEK_END)
        pos, block, buf = size, 1 << 16, b""
        while True:
            start = max(0, pos - block)
            f.seek(start)
            buf = f.read(pos - start) + buf
            pos = start
            end = buf.rfind(b"\n")
            if end >= 0:
                begin = buf.rfind(b"\n", 0, end)
                if begin >= 0 or pos == 0:
                    return buf[begin + 1:end], end < len(buf) - 1
            if pos == 0:
                return None, bool(buf)
            block *= 2


def _last_line_streamed(f: Any, source: str) -> tuple[bytes | None, bool]:
    last, partial = None, False
    try:
        for _lineno, raw, complete in iter_lines(f, source):
            if complete:
                last = raw
            else:
                partial = True
    except TraceError:
        partial = True
    return last, partial
