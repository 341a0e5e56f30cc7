"""Reading traces: events and records with their line numbers, errors naming file and line.

::

    with TraceReader("run.jsonl.gz") as trace:
        print(trace.header["kernel"])
        for lineno, item in trace:          # item: an Event, or a record dict
            ...

The header is read (and checked) when the reader is made, so a foreign file, a missing header
or a schema this program does not read fails at once, even in lenient mode. In strict mode the
first bad line raises :class:`~coi_sentinel.errors.TraceError`; with ``lenient=True`` bad lines
are skipped and counted in :attr:`TraceReader.skipped` by reason. Audit logs read unchanged:
keys starting with ``_`` (the hash chain) are dropped from records and ignored in events.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Union

import orjson

from ..errors import EventDecodeError, TraceError
from ..events import codec
from ..events.model import Event
from ..events.types import EVENT_TYPE_BY_LABEL
from .format import KIND, SCHEMA
from .lines import iter_blocks, open_binary

log = logging.getLogger(__name__)

Item = Union[Event, dict[str, Any]]

#: the keys a line is told by, as orjson's own objects (found by identity)
_KEYS = codec.orjson_keys(("record", "type"))

#: how many skipped-line errors a lenient reader keeps for its report (all are counted)
KEEP_ERRORS = 20


class TraceReader:
    """One trace file. Iterate for ``(line number, Event | record dict)``, in file order."""

    def __init__(self, path: str | os.PathLike[str], *, lenient: bool = False) -> None:
        self.source = os.fspath(path)
        self.lenient = lenient
        #: skipped lines by reason (lenient mode)
        self.skipped: Counter[str] = Counter()
        #: the first :data:`KEEP_ERRORS` errors of skipped lines, for a report
        self.errors: list[TraceError] = []
        self.events = 0
        self.records = 0
        self.footer: dict[str, Any] | None = None
        #: the line of the last event read
        self.line = 0
        self._file: BinaryIO = open_binary(path)
        self._blocks = iter_blocks(self._file, self.source)
        #: the rest of the block the header was read from
        self._first: tuple[int, list[bytes], bool] | None = None
        try:
            self.header: dict[str, Any] = self._read_header()
        except BaseException:
            self.close()
            raise

    # -- header ---------------------------------------------------------------------------

    def _read_header(self) -> dict[str, Any]:
        block = next(self._blocks, None)
        if block is None:
            raise TraceError("empty file: no trace header", source=self.source, line=1,
                             reason="header")
        lineno, lines, complete = block
        raw = lines[0]
        if len(lines) > 1:
            self._first = (lineno + 1, lines[1:], complete)
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise TraceError("not a coi-sentinel trace: the first line is not JSON",
                             source=self.source, line=lineno, reason="foreign") from None
        if not isinstance(d, dict):
            raise TraceError("not a coi-sentinel trace: the first line is not a JSON object",
                             source=self.source, line=lineno, reason="foreign")
        if "record" not in d and d.get("type") in EVENT_TYPE_BY_LABEL:
            raise TraceError("no trace header: the file starts with an event (a `watch --json` "
                             "capture is not a trace; see docs/traces.md)",
                             source=self.source, line=lineno, reason="header")
        return _check_header(d, self.source, lineno)

    # -- body -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[int, Item]]:
        return self._read(None)     # type: ignore[return-value]

    def iter_events(self, on_record: Callable[[int, dict[str, Any]], None] | None = None) -> Iterator[Event]:
        """Only the events, in order (context events of an audit log included); each record is
        given to ``on_record`` with its line number as it is read. :attr:`line` is the line of
        the event just yielded."""
        return self._read(on_record or _ignore)     # type: ignore[return-value]

    def _read(self, on_record: Callable[[int, dict[str, Any]], None] | None
              ) -> Iterator[tuple[int, Item] | Event]:
        """The lines in order: ``(line, item)`` pairs, or with ``on_record`` the events alone.
        One generator over the lines (the hot loop of replay): a TraceError of a line is
        handled inside; one that reaches the outer handler came from reading the lines."""
        decode, lenient = self._decode, self.lenient
        loads, from_dict, fast = orjson.loads, codec.from_dict, codec.FAST_DECODERS.get
        record_key, type_key = _KEYS["record"], _KEYS["type"]
        pairs = on_record is None
        blocks = self._blocks if self._first is None else itertools.chain((self._first,), self._blocks)
        self._first = None
        try:
            for lineno, lines, complete in blocks:
                lineno -= 1
                for raw in lines:
                    lineno += 1
                    # an event line, the common case, here (the codec's decoder of its type;
                    # from_dict when it declines); anything else (a record, a line that
                    # fails) through _decode, which says what is wrong
                    try:
                        d = loads(raw)
                        if type(d) is dict and d.get(record_key) is None and type_key in d:
                            dec = fast(d[type_key])
                            if dec is None:
                                item = from_dict(d)
                            else:
                                try:
                                    item = dec(d)
                                except KeyError:        # a field missing: from_dict names it
                                    item = None
                                if item is None:
                                    item = from_dict(d)
                            self.events += 1
                            self.line = lineno
                            yield (lineno, item) if pairs else item
                            continue
                    except (orjson.JSONDecodeError, EventDecodeError, TypeError, ValueError):
                        pass
                    try:
                        item = decode(lineno, raw, complete)
                    except TraceError as err:
                        if not lenient:
                            raise
                        self._skip(err)
                        continue
                    if pairs:
                        yield lineno, item
                    elif type(item) is dict:
                        on_record(lineno, item)     # type: ignore[misc]
                    else:
                        self.line = lineno
                        yield item
        except TraceError as err:
            # a gzip stream that ends early or is corrupt: nothing after it can be read
            if not lenient:
                raise
            self._skip(err)

    def _skip(self, err: TraceError) -> None:
        self.skipped[err.reason] += 1
        if len(self.errors) < KEEP_ERRORS:
            self.errors.append(err)
        log.debug("skipped: %s", err)

    def _decode(self, lineno: int, raw: bytes, complete: bool) -> Item:
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            if not complete:
                raise TraceError("truncated: the last line is incomplete (the writer was killed, "
                                 "or the file was cut)", source=self.source, line=lineno,
                                 reason="truncated") from None
            what = "empty line" if not raw.strip() else f"not JSON: {err}"
            raise TraceError(what, source=self.source, line=lineno, reason="json") from None
        if not isinstance(d, dict):
            raise TraceError("not a JSON object", source=self.source, line=lineno, reason="json")
        kind = d.get("record")
        if kind is not None:
            if not isinstance(kind, str):
                raise TraceError(f"record kind {kind!r} is not a string", source=self.source,
                                 line=lineno, reason="record")
            if any(k.startswith("_") for k in d):
                d = {k: v for k, v in d.items() if not k.startswith("_")}
            if kind == "header":
                _check_header(d, self.source, lineno)   # a concatenated trace's next part
            elif kind == "footer":
                self.footer = d
            self.records += 1
            return d
        if "type" in d:
            try:
                ev = codec.from_dict(d)
            except EventDecodeError as err:
                raise TraceError(str(err), source=self.source, line=lineno,
                                 reason="event") from err
            except (TypeError, ValueError) as err:   # a field of the wrong JSON type
                raise TraceError(f"bad {d.get('type')!r} event: {err}", source=self.source,
                                 line=lineno, reason="event") from err
            self.events += 1
            return ev
        raise TraceError("neither an event (no \"type\") nor a record (no \"record\")",
                         source=self.source, line=lineno, reason="record")

    # -- lifetime -------------------------------------------------------------------------

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TraceReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ignore(_line: int, _record: dict[str, Any]) -> None:
    """Records are skipped (:meth:`TraceReader.iter_events` without ``on_record``)."""


def _check_header(d: dict[str, Any], source: str, lineno: int) -> dict[str, Any]:
    if d.get("record") != "header":
        raise TraceError("not a coi-sentinel trace: the first line is not a header record",
                         source=source, line=lineno, reason="foreign")
    if d.get("kind") != KIND:
        raise TraceError(f"not a coi-sentinel trace: header kind {d.get('kind')!r} is not "
                         f"{KIND!r}", source=source, line=lineno, reason="foreign")
    schema = d.get("schema")
    if schema != SCHEMA:
        raise TraceError(f"trace schema {schema!r} is not supported (this coi-sentinel reads "
                         f"schema {SCHEMA})", source=source, line=lineno, reason="schema")
    if any(k.startswith("_") for k in d):
        d = {k: v for k, v in d.items() if not k.startswith("_")}
    return d


def read_events(paths: Iterable[str | os.PathLike[str]], *, lenient: bool = False,
                skipped: Counter[str] | None = None) -> Iterator[Event]:
    """The events of several traces, one after the other (what ``replay`` feeds the engine).

    With ``lenient``, lines skipped in all files are added to ``skipped`` when it is given.
    """
    for path in paths:
        with TraceReader(path, lenient=lenient) as trace:
            yield from trace.iter_events()
            if skipped is not None:
                skipped.update(trace.skipped)
