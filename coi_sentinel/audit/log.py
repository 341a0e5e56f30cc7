"""The audit log: a trace with a hash chain, rotated and pruned, with a flight recorder.

::

    log = AuditLog(host.paths.audit_log("agent-1"),
                   make_header("run", coverage=cov.to_dict(), session="agent-1"),
                   events="context")              # keep events in memory, log them as context
    pipeline.add_sink(log)                        # before the rules engine's sink
    ...
    log.write_alert(alert.record())               # high and above: pre-trigger events first
    log.write_action(ActionRecord(Action.PAUSE, "rules", True, ...))
    log.write_record(DropsRecord(counts={...}))   # coi_sentinel.records: one codec
    log.tick()                                    # from the poll loop, at least once a second
    log.close()

Every line is sealed by :class:`~coi_sentinel.audit.chain.HashChain`; the file replays as a
trace. Files are created with mode 0600 (the directory, when created, 0700).

``events="all"`` writes every event (``watch --output``); ``events="context"`` keeps them in a
:class:`~coi_sentinel.audit.recorder.FlightRecorder` and writes a scope's recent events only
when an alert of ``context_severity`` or above fires in it, as a ``context`` record followed by
the events and then the alert; ``events="none"`` writes records only.

Durability: as :class:`~coi_sentinel.trace.writer.TraceWriter` - a crash loses at most the
lines of the current batch (fewer than ``batch_records``, none older than ``batch_seconds`` as
long as :meth:`AuditLog.tick` runs); a batch's fsync runs in a thread of the writer's, so the
event loop does not wait for the disk. Actions, and the alerts that led to one, are fsync'd
before their ``write_*`` returns (the sentinel's order, :mod:`coi_sentinel.sentinel`: act, then
fsync, then tell). An alert written with ``durable=False`` (no action came of it) is written to
the file before ``write_alert`` returns - the kernel has it, a crash of this process cannot lose
it - and fsync'd, without the event loop waiting, at the next :meth:`AuditLog.end_batch` (the
pipeline's end of the batch it came in) or :meth:`AuditLog.tick`.

Opening a log whose active file exists (a restart, or a crash) moves that file aside as the
next rotated file and continues its chain in a new active file; the new header says whether
the old file was closed cleanly and whether it ended mid-line. A full disk raises
:class:`~coi_sentinel.errors.AuditDiskFull` (at most once per ``retry_seconds`` while it lasts);
records are kept in memory meanwhile and written when space returns.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..errors import AuditDiskFull, AuditError, TraceError
from ..events.model import Event
from ..trace.format import iso_time, is_gzip_name, make_header
from ..trace.writer import DISK_FULL_ERRNOS, TraceWriter, sync_dir
from . import head as head_mod
from . import severity
from .chain import ALG, HashChain
from .files import (Tail, log_files, next_number, read_tail, rotated_files, rotated_path,
                    unfinished_header)
from .policy import AuditPolicy
from .recorder import FlightRecorder

if TYPE_CHECKING:
    from ..records import ActionRecord, AlertRecord, Record

log = logging.getLogger(__name__)

EVENT_MODES = ("all", "context", "none")


class AuditLog:
    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any] | None = None, *,
                 policy: AuditPolicy | None = None, events: str = "all",
                 recorder: FlightRecorder | None = None) -> None:
        if events not in EVENT_MODES:
            raise ValueError(f"events must be one of {EVENT_MODES}, not {events!r}")
        self.path = Path(path)
        if is_gzip_name(self.path):
            raise AuditError(f"{self.path}: an audit log is written uncompressed (gzip rotated "
                             "files afterwards if needed)", path=str(self.path))
        self.policy = policy or AuditPolicy()
        self.events = events
        if recorder is not None and events != "context":
            raise ValueError('a flight recorder is only used with events="context"')
        if events == "context" and recorder is None:
            p = self.policy
            recorder = FlightRecorder(p.context_seconds, p.context_events, p.context_scopes)
        self.recorder = recorder
        self._context_rank = severity.rank(self.policy.context_severity)
        #: the size at which the active file is rotated (checked after each event)
        self._rotate_at: float = self.policy.max_bytes or float("inf")
        self._base_header = dict(header) if header is not None else make_header("audit")
        self._chain = HashChain()
        self._opened_at = 0.0
        self._index = 0
        self._chain_id = ""
        self._writer: TraceWriter | None = None
        #: the sealed head beside the log (see .head): rewritten after each fsync'd batch
        self.head_path = head_mod.head_path(self.path)
        self._head: head_mod.HeadFile | None = None
        self._closing = False
        #: alerts written with durable=False wait for an fsync (see end_batch())
        self._owed = False
        self._open()

    # -- opening, rotation, retention -----------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise AuditError(f"cannot create {self.path.parent}: {err.strerror}",
                             path=str(self.path.parent)) from err
        self._mode = file_mode(self.path.parent)
        tail = self._previous_tail()
        chain: dict[str, Any] = {"alg": ALG}
        if tail is not None and tail.last_h is not None and tail.last_n is not None:
            self._chain = HashChain(tail.last_h, tail.last_n + 1)
            self._chain_id = tail.chain_id
            self._index = tail.index + 1
            chain.update(id=self._chain_id, file=self._index, prev=tail.last_h,
                         prev_file=tail.path.name,
                         prev_end={"closed": tail.closed, "partial": tail.partial})
            if not tail.closed:
                log.warning("%s was not closed cleanly%s; continuing its chain", tail.path,
                            " and ends mid-line" if tail.partial else "")
        else:
            self._chain_id = uuid.uuid4().hex
            chain.update(id=self._chain_id, file=0, prev=None, prev_file=None, prev_end=None)
            if tail is not None:
                log.warning("%s: %s; starting a new chain", tail.path, tail.problem)
                chain["prev_file"] = tail.path.name
                chain["prev_error"] = tail.problem
        self._start_file(chain)
        self._apply_retention()

    def _previous_tail(self) -> Tail | None:
        """The end of the chain to continue: the active file left by the last run (moved aside
        now), or the newest rotated file."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as err:
            raise AuditError(f"cannot stat {self.path}: {err.strerror}", path=str(self.path)) from err
        if st is not None:
            if not os.path.isfile(self.path) or os.path.islink(self.path):
                raise AuditError(f"{self.path} exists and is not a regular file", path=str(self.path))
            if st.st_size == 0 or unfinished_header(self.path):
                log.warning("%s has no complete header (a crash while it was created); removing it",
                            self.path)
                self._unlink(self.path)
            else:
                tail = read_tail(self.path)     # AuditError if it is not an audit log
                target = rotated_path(self.path, next_number(self.path))
                self._rename(self.path, target)
                tail.path = target
                return tail
        rotated = rotated_files(self.path)
        for _number, path in reversed(rotated):
            try:
                return read_tail(path)
            except AuditError as err:
                log.warning("ignoring %s: %s", path, err)
        return None

    def _start_file(self, chain: dict[str, Any]) -> None:
        header = dict(self._base_header)
        chain = {**chain, "head": self.head_path.name}
        header.update(start_ns=time.monotonic_ns(), start_time=iso_time(), chain=chain)
        p = self.policy
        try:
            self._writer = TraceWriter(self.path, header, batch_records=p.batch_records,
                                       batch_seconds=p.batch_seconds, fsync=p.fsync,
                                       seal_line=self._chain.seal_line, max_pending_bytes=p.max_pending_bytes,
                                       retry_seconds=p.retry_seconds, on_durable=self._write_head,
                                       mode=self._mode, mark=self._chain_mark,
                                       background_sync=True)
            if self._mode != 0o600:
                os.chmod(self.path, self._mode)     # whatever the umask: the folder is root's
        except TraceError as err:
            raise self._translate(err) from err
        except OSError as err:
            raise AuditError(f"cannot share {self.path}: {err.strerror}", path=str(self.path)) from err
        self._opened_at = time.monotonic()

    def _chain_mark(self) -> tuple[int, str]:
        """Where the chain stands: the last line's ``_n`` and ``_h``."""
        return self._chain.n - 1, self._chain.prev

    def _write_head(self, mark: tuple[int, str]) -> None:
        """The lines up to ``mark`` (see :meth:`_chain_mark`) are on disk: say so in the head
        file."""
        if self._head is None:
            self._head = head_mod.HeadFile(self.head_path,
                                           head_mod.load_key(self.path.parent, create=True),
                                           mode=self._mode)
        n, h = mark
        self._head.write(chain=self._chain_id, file=self._index, log_name=self.path.name,
                         n=n, h=h, closed=self._closing, sync=self._closing)

    def rotate(self) -> Path:
        """Close the active file (footer), move it aside, continue the chain in a new one.
        Returns the rotated file's path."""
        w = self._live()
        self._closing = True
        try:
            w.close({"reason": "rotate"})
        except TraceError as err:
            raise self._translate(err) from err
        finally:
            self._closing = False
        target = rotated_path(self.path, next_number(self.path))
        self._rename(self.path, target)
        self._index += 1
        self._start_file({"alg": ALG, "id": self._chain_id, "file": self._index,
                          "prev": self._chain.prev, "prev_file": target.name,
                          "prev_end": {"closed": True, "partial": False}})
        log.info("audit log rotated: %s", target)
        self._apply_retention()
        return target

    def _apply_retention(self) -> None:
        keep = self.policy.retention
        if keep is None:
            return
        cutoff = time.time() - keep
        removed: list[str] = []
        for _number, path in rotated_files(self.path):
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed.append(path.name)
            except FileNotFoundError:
                continue
            except OSError as err:
                log.warning("retention: cannot remove %s: %s", path, err.strerror)
        if removed:
            log.info("retention: removed %d audit files older than %ss", len(removed), keep)
            self.write_record(records.MonitorRecord("retention", detail={"removed": removed,
                                                                        "older_than_s": keep}))

    def _rename(self, src: Path, dst: Path) -> None:
        if dst.exists():
            raise AuditError(f"cannot move {src} aside: {dst} exists", path=str(src))
        try:
            os.rename(src, dst)
        except OSError as err:
            raise AuditError(f"cannot move {src} to {dst}: {err.strerror}", path=str(src)) from err
        sync_dir(str(src.parent))

    def _unlink(self, path: Path) -> None:
        try:
            os.unlink(path)
        except OSError as err:
            raise AuditError(f"cannot remove {path}: {err.strerror}", path=str(path)) from err

    # -- writing --------------------------------------------------------------------------

    def _live(self) -> TraceWriter:
        if self._writer is None or self._writer.closed:
            raise AuditError(f"audit log {self.path} is closed", path=str(self.path))
        return self._writer

    def _translate(self, err: TraceError) -> AuditError:
        if err.errno in DISK_FULL_ERRNOS:
            w = self._writer
            held = w.size - w.bytes_written if w is not None else 0
            name = errno.errorcode.get(err.errno or 0, "?")
            return AuditDiskFull(f"audit log {self.path}: no space left ({name}); {held} bytes "
                                 "held in memory until space is freed", path=str(self.path),
                                 errno=err.errno)
        return AuditError(f"audit log: {err}", path=str(self.path))

    def write_event(self, event: Event, process: object = None) -> None:
        """Write (or, in ``context`` mode, keep) one event. Also the pipeline sink."""
        if self.events != "all":
            if self.recorder is not None:       # "context"
                self.recorder.add(event)
            return
        w = self._writer
        if w is None or w.closed:
            raise AuditError(f"audit log {self.path} is closed", path=str(self.path))
        try:
            w.write_event(event)
        except TraceError as err:
            raise self._translate(err) from err
        if w.size >= self._rotate_at and w.error is None:
            self.rotate()

    __call__ = write_event      # a pipeline sink: (event, process)

    def write_record(self, record: "Record | dict[str, Any]", *, sync: bool = False) -> None:
        """Any record (:mod:`coi_sentinel.records`: drops, monitor...; a plain dict is written
        as it is, ``record`` first); ``time`` is added if absent."""
        body = None
        if isinstance(record, dict):
            d = records.untyped(record.get("record"), record,
                                time=None if "time" in record else iso_time())
        else:       # an alert has its time (the event's): no clock read, no second record
            rec = record if record.time else records.stamped(record, iso_time())
            if type(rec) is records.AlertRecord:
                try:
                    # the alert's own JSON, which the terminal and the outputs reuse
                    # (records.dumps keeps the last alert's bytes): encoded once for all
                    body = records.dumps(rec)
                except TypeError:   # a value plain JSON cannot hold: the writer's encoder says
                    pass
            d = records.to_dict(rec) if body is None else None
        w = self._live()
        try:
            if body is not None:
                w.write_encoded_record(body, sync=sync)
            else:
                w.write_record(d, sync=sync)
        except TraceError as err:
            raise self._translate(err) from err
        self._rotate_if_due()

    def write_alert(self, alert: "AlertRecord | dict[str, Any]", *, scope_id: int | None = None,
                    durable: bool = True) -> None:
        """Write an alert, fsync'd before this returns; with ``durable=False`` (an alert no
        action came of) written to the file now and fsync'd in the background at the next
        :meth:`end_batch` or :meth:`tick`. In ``context`` mode, an alert of
        ``context_severity`` or above is preceded by the flight recorder's events of its
        scope: ``scope_id``, or the alert's (a dict's ``scope_id`` / ``event.scope_id`` /
        ``process.scope_id``)."""
        if isinstance(alert, dict):
            rank, rule = severity.rank(severity.of_alert(alert)), alert.get("rule", alert.get("rule_id"))
            own_scope = _scope_of(alert)
            rec: Any = records.untyped("alert", alert)
        else:
            rank, rule, own_scope, rec = int(alert.severity), alert.rule, alert.scope_id or None, alert
        if self.recorder is not None and rank >= self._context_rank:
            scope = scope_id if scope_id is not None else own_scope
            if scope is None:
                log.debug("alert %s names no scope: no context written", rule)
            else:
                self._write_context(scope, rule)
        if durable:
            self.write_record(rec, sync=True)
            self._owed = False
            return
        self.write_record(rec)
        try:
            self._live().flush(sync=False)
        except TraceError as err:
            raise self._translate(err) from err
        self._owed = True

    def end_batch(self) -> None:
        """The pipeline handled a batch of events: alerts written with ``durable=False`` get
        their fsync, in the writer's thread (the event loop does not wait)."""
        if self._owed:
            self._owed = False
            try:
                self._live().flush(wait=False)
            except TraceError as err:
                raise self._translate(err) from err

    def write_action(self, action: "ActionRecord | dict[str, Any]") -> None:
        """Write a response taken (kill, pause, block...), fsync'd."""
        self.write_record(action if not isinstance(action, dict) else records.untyped("action", action),
                          sync=True)

    def _write_context(self, scope: int, rule: str) -> None:
        assert self.recorder is not None
        ctx = self.recorder.take(scope)
        if not ctx.events:
            return
        first, last = ctx.events[0], ctx.events[-1]
        w = self._live()
        try:
            w.write_record(records.to_dict(records.ContextRecord(
                scope_id=scope, container=last.container, events=len(ctx.events),
                from_ns=first.ts_ns, to_ns=last.ts_ns, seconds=self.recorder.seconds,
                overflow=ctx.overflow, rule=rule, time=iso_time())))
            for ev in ctx.events:
                w.write_event(ev)
        except TraceError as err:
            raise self._translate(err) from err

    def _rotate_if_due(self) -> None:
        w = self._writer
        if w is None or w.closed or w.error is not None:
            return
        p = self.policy
        if ((p.max_bytes is not None and w.size >= p.max_bytes)
                or (p.max_age is not None and time.monotonic() - self._opened_at >= p.max_age)):
            self.rotate()

    def tick(self) -> None:
        """Flush a due batch, retry a failed write, rotate by age. Call at least once a second."""
        self.end_batch()
        w = self._live()
        try:
            w.tick()
        except TraceError as err:
            raise self._translate(err) from err
        self._rotate_if_due()

    def flush(self) -> None:
        """Write and fsync everything now."""
        self._owed = False
        try:
            self._live().flush()
        except TraceError as err:
            raise self._translate(err) from err

    # -- state ----------------------------------------------------------------------------

    @property
    def disk_full(self) -> bool:
        w = self._writer
        return w is not None and w.error is not None and w.error.errno in DISK_FULL_ERRNOS

    @property
    def head(self) -> str:
        """The chain's last hash: kept elsewhere, it anchors the log (``audit verify``)."""
        return self._chain.prev

    @property
    def writer(self) -> TraceWriter:
        return self._live()

    def files(self) -> list[Path]:
        return log_files(self.path)

    def close(self) -> None:
        if self._writer is None or self._writer.closed:
            return
        self._closing = True
        try:
            self._writer.close({"reason": "close"})
        except TraceError as err:
            raise self._translate(err) from err
        finally:
            if self.recorder is not None:
                self.recorder.clear()
            if self._head is not None:
                self._head.close()
                self._head = None

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_mode(folder: Path) -> int:
    """The mode of the log files in ``folder``: as readable as the folder. 0640 in a folder its
    group may read (the daemon's folder of a user's sessions run without root: root's, group
    the user's, docs/daemon.md "Without root"), else 0600. The head key stays 0600 always."""
    try:
        readable = os.stat(folder).st_mode & 0o050 == 0o050
    except OSError:
        readable = False
    return 0o640 if readable else 0o600


def _scope_of(alert: dict[str, Any]) -> int | None:
    for holder in (alert, alert.get("event"), alert.get("process")):
        if isinstance(holder, dict):
            scope = holder.get("scope_id")
            if isinstance(scope, int) and not isinstance(scope, bool):
                return scope
    return None
