"""Writing traces: append-only, batched, fsync'd per batch, gzip when the name ends in ``.gz``.

::

    header = make_header("record", coverage=cov.to_dict())
    with TraceWriter("run.jsonl.gz", header) as out:
        pipeline.add_sink(out)                     # a sink: writes every event
        out.write_record({"record": "drops", "counts": {"exec": 3}})
        ...                                        # close() writes the footer

Durability: lines are kept in memory and written, then fsync'd, as one batch when
``batch_records`` lines are waiting or the oldest has waited ``batch_seconds`` (checked on every
write and by :meth:`TraceWriter.tick`, which a poll loop calls when idle). A crash (of the
process or of the machine) loses at most the lines written since the last batch: fewer than
``batch_records``, none older than ``batch_seconds`` when ticked. ``write_record(...,
sync=True)`` returns only once the record is on disk.

Write errors raise :class:`~coi_sentinel.errors.TraceError` with reason ``"write"`` and the OS
``errno``. Lines not yet written stay in memory and a later write (after ``retry_seconds``),
:meth:`~TraceWriter.tick` or :meth:`~TraceWriter.flush` tries again, continuing at the exact
byte where the failed write stopped. While failing, at most ``max_pending_bytes`` are kept;
further lines are counted in :attr:`~TraceWriter.lost`. On recovery a ``monitor`` record (and a
``drops`` record if anything was lost) says so. A gzip trace cannot continue after a write
error (the stream's state is gone), so it fails for good.
"""

from __future__ import annotations

import errno
import gzip
import logging
import os
import threading
import time
from collections import deque
from pathlib import PurePath
from typing import Any, Callable

import orjson

from .. import records
from ..errors import TraceError
from ..events import codec
from ..events.model import Event
from .format import iso_time, is_gzip_name
from .lines import iter_lines, open_binary

log = logging.getLogger(__name__)

#: errors that mean "no room": the audit log reports these as a full disk
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

_EVENT, _RECORD, _META = 0, 1, 2
_monotonic = time.monotonic
_event_line = codec.dumps


class TraceWriter:
    """Append events and records to one trace file. Also a pipeline sink: ``w(event, proc)``.

    ``seal_line``, when given, turns each line's JSON body into the line written, newline
    included (the audit log's hash chain); it is called once per line, in file order. ``background_sync``: see the
    module doc. ``fd`` writes to an already open
    descriptor (stdout, a pipe) instead of creating ``path``, which then only names it in
    messages; such a descriptor is not closed.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any], *,
                 batch_records: int = 256, batch_seconds: float = 1.0, fsync: bool = True,
                 overwrite: bool = False, mode: int = 0o600,
                 seal_line: Callable[[bytes], bytes] | None = None,
                 max_pending_bytes: int = 64 << 20, retry_seconds: float = 1.0,
                 fd: int | None = None, on_durable: Callable[[Any], None] | None = None,
                 mark: Callable[[], Any] | None = None, background_sync: bool = False) -> None:
        if header.get("record") != "header":
            raise ValueError('a trace header must be a {"record": "header", ...} dict')
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        self.path = os.fspath(path)
        self.batch_records = batch_records
        self.batch_seconds = batch_seconds
        self.fsync = fsync
        self.max_pending_bytes = max_pending_bytes
        self.retry_seconds = retry_seconds
        self._seal_line = seal_line
        #: called after each flush that wrote (and fsync'd) everything sealed so far, with
        #: what ``mark()`` returned when that flush wrote (None without ``mark``)
        self._on_durable = on_durable
        self._mark = mark
        self.background_sync = background_sync and fsync
        self._syncer: _Syncer | None = None
        #: batches written whose fsync runs in the syncer: (its ticket, lines accepted, mark)
        self._syncing: deque[tuple[int, int, Any]] = deque()
        self._buf: list[bytes] = []
        #: lines taken out of ``_buf`` (written, or kept in ``_unwritten``)
        self._lines_out = 0
        #: the header and footer lines among them
        self._meta_lines = 0
        self._oldest = 0.0
        self._unwritten = b""          # the rest of a batch whose write failed
        self._dirty = False            # written but not yet fsync'd
        self.closed = False
        #: the OS error of the failing write, None while writing works
        self.error: OSError | None = None
        self._failed_at = 0.0
        self._failed_since = ""
        self.records_written = 0       # records accepted, header and footer not counted
        self.lines_durable = 0         # lines written and fsync'd (or written, without fsync)
        self.bytes_written = 0
        #: bytes in the file once everything accepted is written (an event adds to it, nothing
        #: else: a write moves bytes from the buffer to ``bytes_written`` or ``_unwritten``)
        self.size = 0
        self.lost = 0                  # lines refused while the backlog was full
        compressed = is_gzip_name(self.path)
        created = fd is None
        if fd is None:
            fd = _create(self.path, overwrite=overwrite, mode=mode, append=not compressed)
        self._out: _PlainOut | _GzipOut = _GzipOut(fd, created) if compressed else _PlainOut(fd, created)
        self.header = header
        try:
            self._append(_dumps_record(header), _META)
            self.flush()
            if created and fsync:
                sync_dir(os.path.dirname(os.path.abspath(self.path)))
        except BaseException:
            # no file without a complete header: a restart would take it for a foreign one
            self.closed = True
            self._out.broken = True
            try:
                self._out.close()
            finally:
                if created:
                    try:
                        os.unlink(self.path)
                    except OSError:
                        pass
            raise

    # -- writing --------------------------------------------------------------------------

    def write_event(self, event: Event) -> bool:
        """Buffer one event; returns False if it was refused (backlog full after write errors).
        Bytes that are not UTF-8 (paths, argv) are written as ``\\xNN`` by the codec."""
        buf = self._buf
        if self.error is not None or self.closed or not buf:
            return self._append(_event_line(event), _EVENT)
        # the hot path (a batch under way, writing works): _append's steps, inline; the line
        # counts follow from the buffer's length (lines_accepted, events_written)
        seal_line = self._seal_line
        line = seal_line(_event_line(event)) if seal_line is not None else _event_line(event) + b"\n"
        buf.append(line)
        self.size += len(line)
        if len(buf) >= self.batch_records or _monotonic() - self._oldest >= self.batch_seconds:
            self._maybe_flush()
        return True

    def __call__(self, event: Event, process: object = None) -> None:
        self.write_event(event)

    def write_record(self, record: dict[str, Any], *, sync: bool = False) -> bool:
        """Buffer one record (``{"record": kind, ...}``); with ``sync`` flush and fsync it now.

        Keys starting with ``_`` are reserved for writers (readers drop them) and refused here.
        """
        kind = record.get("record")
        if not isinstance(kind, str) or not kind or kind in ("header", "footer"):
            raise ValueError(f'a record needs a "record" kind (not header/footer), got {kind!r}')
        if any(isinstance(k, str) and k.startswith("_") for k in record):
            raise ValueError("record keys starting with '_' are reserved for the trace writer")
        accepted = self._append(_dumps_record(record), _RECORD)
        if sync:
            self.flush()
        return accepted

    def write_encoded_record(self, body: bytes, *, sync: bool = False) -> bool:
        """:meth:`write_record` for a record already encoded by :func:`coi_sentinel.records.dumps`
        (a typed record: ``record`` first, no ``_`` keys, one JSON object on one line)."""
        if not body.startswith(b'{"record":') or b"\n" in body:
            raise ValueError("an encoded record is one JSON object line, \"record\" first")
        accepted = self._append(body, _RECORD)
        if sync:
            self.flush()
        return accepted

    def _append(self, body: bytes, kind: int) -> bool:
        """Seal and buffer one line; ``kind`` is _EVENT, _RECORD or _META (header, footer:
        not counted, never refused). Flushes when a batch is due. The hot path of a trace."""
        if self.closed:
            raise TraceError("write after close", source=self.path, reason="write")
        if (self.error is not None and kind != _META
                and self.size - self.bytes_written >= self.max_pending_bytes):
            self.lost += 1
            return False
        line = self._seal_line(body) if self._seal_line is not None else body + b"\n"
        buf = self._buf
        if not buf:
            self._oldest = _monotonic()
        buf.append(line)
        self.size += len(line)
        if kind == _RECORD:
            self.records_written += 1
        elif kind == _META:
            self._meta_lines += 1
        if (len(buf) >= self.batch_records or self.error is not None
                or _monotonic() - self._oldest >= self.batch_seconds):
            self._maybe_flush()
        return True

    def _maybe_flush(self) -> None:
        if self._syncing:
            self._settle()
        now = _monotonic()
        if self.error is not None:
            if now - self._failed_at >= self.retry_seconds:
                self.flush()
        elif len(self._buf) >= self.batch_records or (self._buf and now - self._oldest >= self.batch_seconds):
            self.flush(wait=False)

    def tick(self) -> None:
        """Flush if a batch is due (or a failed write is due a retry). Call it when idle."""
        if self._syncing:
            self._settle()
        if self._buf or self._unwritten or self._dirty:
            self._maybe_flush()

    def _settle(self, *, wait: bool = False) -> None:
        """Batches whose background fsync has returned (all of them with ``wait``) become
        durable; a failed one is a write error (raised here, retried like a failed write)."""
        syncer = self._syncer
        assert syncer is not None
        if wait:
            syncer.wait(self._syncing[-1][0])
        done = syncer.done
        last = None
        while self._syncing and self._syncing[0][0] <= done:
            last = self._syncing.popleft()
        err, syncer.error = syncer.error, None
        if err is not None:
            self._dirty = True          # the next flush syncs again
            self._syncing.clear()
            self._fail(err)
        if last is not None:
            self.lines_durable = last[1]
            if self._on_durable is not None:
                self._on_durable(last[2])

    def flush(self, *, wait: bool = True, sync: bool = True) -> None:
        """Write and fsync everything buffered. Raises TraceError(reason="write") on failure.
        ``wait=False`` (with ``background_sync``): leave the fsync to the syncer thread.
        ``sync=False``: only write (the kernel has the lines: a crash of this process cannot
        lose them); the next flush that syncs covers them (after a write error: synced now)."""
        if self.closed:
            return
        if not sync and self.error is None and self.fsync:
            self._write_out()
            return
        if self._syncing and wait:
            self._settle(wait=True)     # what was handed to the syncer first
        if isinstance(self._out, _GzipOut) and self._out.broken:
            raise TraceError("cannot continue a compressed trace after a write error",
                             source=self.path, reason="write", errno=self.error.errno if self.error else None)
        data = self._unwritten + b"".join(self._buf) if self._buf else self._unwritten
        accepted = self.lines_accepted
        self._lines_out += len(self._buf)
        self._buf.clear()
        done = self._write(data)
        later = False
        self._dirty = self._dirty or done > 0
        try:
            if self.fsync and self._dirty:
                if wait or not self.background_sync or self.error is not None:
                    self._out.sync()
                else:
                    later = True
            self._dirty = False
        except OSError as err:
            self._fail(err)
        mark = self._mark() if self._mark is not None else None
        if later:
            if self._syncer is None:
                self._syncer = _Syncer(self._out.sync, os.path.basename(self.path))
            self._syncing.append((self._syncer.ask(), accepted, mark))
            return
        self.lines_durable = accepted
        if self.error is not None:
            self._recovered()
        elif done and self._on_durable is not None:
            self._on_durable(mark)

    def _write_out(self) -> None:
        """Write what is buffered without an fsync (see :meth:`flush`)."""
        if not self._buf:
            return
        data = self._unwritten + b"".join(self._buf)
        self._lines_out += len(self._buf)
        self._buf.clear()
        self._write(data)
        self._dirty = True

    def _write(self, data: bytes) -> int:
        """Write ``data`` whole; returns its length. On an OS error the rest is kept for the
        next try (:attr:`_unwritten`) and TraceError raised."""
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                n = self._out.write(view[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "write wrote nothing")
                done += n
        except OSError as err:
            self._unwritten = bytes(view[done:])
            self.bytes_written += done
            self._dirty = self._dirty or done > 0
            self._fail(err)
        self._unwritten = b""
        self.bytes_written += done
        return done

    def _fail(self, err: OSError) -> None:
        if self.error is None:
            self._failed_since = iso_time()
            log.warning("%s: write failed: %s; keeping up to %d bytes in memory", self.path,
                        err.strerror, self.max_pending_bytes)
        self.error = err
        self._failed_at = time.monotonic()
        what = "no space left" if err.errno in DISK_FULL_ERRNOS else "write failed"
        raise TraceError(f"{what}: {err.strerror or err}", source=self.path, reason="write",
                         errno=err.errno) from err

    def _recovered(self) -> None:
        err, lost = self.error, self.lost
        assert err is not None
        self.error = None
        self.lost = 0
        name = errno.errorcode.get(err.errno or 0, str(err.errno))
        log.warning("%s: writing again after %s (%d lines lost)", self.path, name, lost)
        self._append(_dumps_record(records.to_dict(records.MonitorRecord(
            "write_error", detail={"errno": name, "since": self._failed_since, "until": iso_time(),
                                   "lost": lost}))), _RECORD)
        if lost:
            self._append(_dumps_record(records.to_dict(records.DropsRecord(
                source="writer", reason=name, lost=lost))), _RECORD)
        self.flush()

    # -- lifetime -------------------------------------------------------------------------

    @property
    def lines_accepted(self) -> int:
        """Lines accepted (buffered or written), header and footer included."""
        return self._lines_out + len(self._buf)

    @property
    def events_written(self) -> int:
        """Events accepted (buffered or written)."""
        return self.lines_accepted - self.records_written - self._meta_lines

    def close(self, footer: dict[str, Any] | None = None, *, write_footer: bool = True) -> None:
        """Write the footer (``footer`` adds fields to it), flush, fsync and close."""
        if self.closed:
            return
        try:
            if self.error is not None:
                self.flush()          # recover first: the notes it writes precede the footer
            if write_footer:
                rec: dict[str, Any] = {"record": "footer", "end_ns": time.monotonic_ns(),
                                       "end_time": iso_time(), "events": self.events_written,
                                       "records": self.records_written}
                if self.lost:
                    rec["lost"] = self.lost
                rec.update(footer or {})
                self._append(_dumps_record(rec), _META)
            self.flush()
        finally:
            self.closed = True
            if self._syncer is not None:
                self._syncer.stop()
            try:
                self._out.close()
            except OSError as err:
                raise TraceError(f"close failed: {err.strerror}", source=self.path,
                                 reason="write", errno=err.errno) from err

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Syncer:
    """fsyncs one file in a thread of its own when asked: the event loop never waits for the
    disk. Each fsync covers everything written before it began, so a ticket is done once an
    fsync that started after it was taken has returned."""

    def __init__(self, sync: Callable[[], None], name: str) -> None:
        self._sync = sync
        self._cond = threading.Condition()
        self._asked = 0
        #: the last ticket an fsync covered
        self.done = 0
        #: the error of a failed fsync, taken by the writer
        self.error: OSError | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"fsync {name}", daemon=True)
        self._thread.start()

    def ask(self) -> int:
        with self._cond:
            self._asked += 1
            self._cond.notify_all()
            return self._asked

    def wait(self, ticket: int) -> None:
        with self._cond:
            while self.done < ticket and self._thread.is_alive():
                self._cond.wait(1.0)

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while self._asked == self.done and not self._stopping:
                    cond.wait()
                if self._asked == self.done:
                    return
                ticket = self._asked
            err = None
            try:
                self._sync()
            except OSError as e:
                err = e
            with cond:
                if err is not None:
                    self.error = err
                self.done = ticket
                cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()


class _PlainOut:
    """An fd written with os.write: a short write reports how far it got, so a retry resumes."""

    broken = False

    def __init__(self, fd: int, closefd: bool) -> None:
        self.fd = fd
        self.closefd = closefd

    def write(self, data: memoryview) -> int:
        return os.write(self.fd, data)

    def sync(self) -> None:
        _fsync(self.fd)

    def close(self) -> None:
        if self.closefd:
            os.close(self.fd)


class _FdSink:
    """What GzipFile writes into: every byte written, or an OSError."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.write(self.fd, view[done:])
        return done

    def flush(self) -> None:
        pass


class _GzipOut:
    """gzip, sync-flushed at every batch so everything fsync'd decompresses after a crash."""

    def __init__(self, fd: int, closefd: bool) -> None:
        self.fd = fd
        self.closefd = closefd
        self.broken = False
        self.gz = gzip.GzipFile(filename="", mode="wb", fileobj=_FdSink(fd), mtime=0)

    def write(self, data: memoryview) -> int:
        try:
            self.gz.write(data)
            self.gz.flush()           # zlib.Z_SYNC_FLUSH: a decodable point
        except OSError:
            self.broken = True
            raise
        return len(data)

    def sync(self) -> None:
        _fsync(self.fd)

    def close(self) -> None:
        try:
            if not self.broken:
                self.gz.close()
        finally:
            if self.closefd:
                os.close(self.fd)


def _create(path: str, *, overwrite: bool, mode: int, append: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_TRUNC if overwrite else os.O_EXCL
    if append:
        flags |= os.O_APPEND
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as err:
        raise TraceError("already exists (not overwritten)", source=path, reason="write",
                         errno=err.errno) from err
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise TraceError("is a symbolic link: refusing to write through it", source=path,
                             reason="write", errno=err.errno) from err
        raise TraceError(f"cannot create: {err.strerror}", source=path, reason="write",
                         errno=err.errno) from err
    try:
        os.fchmod(fd, mode)           # whatever the umask
    except OSError as err:
        os.close(fd)
        raise TraceError(f"cannot set mode {mode:o}: {err.strerror}", source=path,
                         reason="write", errno=err.errno) from err
    return fd


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:   # pipes, ttys: nothing to sync
            raise


def sync_dir(path: str) -> None:
    """fsync a directory, so a file just created there survives a crash."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        log.debug("cannot open %s to fsync it: %s", path, err)
        return
    try:
        os.fsync(fd)
    except OSError as err:
        log.debug("cannot fsync %s: %s", path, err)
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    raise TypeError(f"cannot write a {type(obj).__name__} in a trace record")


def _dumps_record(record: dict[str, Any]) -> bytes:
    if next(iter(record)) != "record":
        record = {"record": record["record"], **record}
    try:
        return orjson.dumps(record, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as err:
        raise ValueError(f"{record['record']} record: {err}") from err


class OutputFile:
    """A new file written in one go (an export, a rewritten trace): gzip when the name ends in
    ``.gz``, mode 0600 unless told otherwise, never through a symbolic link."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False,
                 mode: int = 0o600) -> None:
        self.path = os.fspath(path)
        fd = _create(self.path, overwrite=overwrite, mode=mode, append=False)
        self._raw = os.fdopen(fd, "wb")
        self._gz = (gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
                    if is_gzip_name(self.path) else None)

    def write(self, data: bytes) -> None:
        try:
            (self._gz or self._raw).write(data)
        except OSError as err:
            raise TraceError(f"write failed: {err.strerror}", source=self.path, reason="write",
                             errno=err.errno) from err

    def close(self) -> None:
        """Finish, fsync and close."""
        try:
            if self._gz is not None:
                self._gz.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        except OSError as err:
            raise TraceError(f"write failed: {err.strerror}", source=self.path, reason="write",
                             errno=err.errno) from err
        finally:
            self._raw.close()

    def discard(self) -> None:
        """Close and remove the unfinished file."""
        try:
            self._raw.close()
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def rewrite_header(path: str | os.PathLike[str], **updates: Any) -> None:
    """Replace fields of a closed trace's header (``record`` adds the final drop counts).

    The file is rewritten to a temporary file beside it and renamed over it. Audit logs (whose
    header is part of the hash chain) cannot be rewritten.
    """
    name = os.fspath(path)
    for key in ("record", "kind", "schema"):
        if key in updates:
            raise ValueError(f"the header's {key!r} cannot be changed")
    with open_binary(name) as f:
        lines = iter_lines(f, name)
        first = next(lines, None)
        if first is None:
            raise TraceError("empty file: no trace header", source=name, line=1, reason="header")
        try:
            header = orjson.loads(first[1])
        except orjson.JSONDecodeError:
            raise TraceError("not a coi-sentinel trace: the first line is not JSON", source=name,
                             line=1, reason="foreign") from None
        if not isinstance(header, dict) or header.get("record") != "header":
            raise TraceError("not a coi-sentinel trace: no header", source=name, line=1,
                             reason="foreign")
        if "_h" in header:
            raise TraceError("an audit log's header is part of its hash chain and cannot be "
                             "rewritten", source=name, line=1, reason="write")
        header.update(updates)
        tmp = f"{name}.rewrite-{os.getpid()}"
        if is_gzip_name(name):
            tmp += ".gz"
        out = OutputFile(tmp, mode=os.stat(name).st_mode & 0o777)
        try:
            out.write(_dumps_record(header) + b"\n")
            for _lineno, raw, complete in lines:
                out.write(raw + b"\n" if complete else raw)
            out.close()
            os.replace(tmp, name)
        except BaseException:
            out.discard()
            raise
    sync_dir(os.path.dirname(os.path.abspath(name)))
