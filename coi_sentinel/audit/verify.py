"""Verifying audit logs: is every line there, unchanged, once, in order, in every file?

:func:`verify` reads the files (in any order, plain or gzip, an export holding several files
one after the other included), checks each line's hash against the line before it, and links
the files by their headers' ``chain`` (id, file number, previous file's last hash). It reports
*problems* (the log is not intact) and *notes* (facts a reader should know, such as a file
still being written). For each file the first broken line is found and classified:

==============  ==========================================================================
edited          the line does not match its hash
missing         records were deleted before this line
reordered       a record appears out of order (the one expected is further down)
duplicated      the line repeats an earlier line
unsealed        a line without a chain hash (inserted or mangled by hand)
truncated       the file ends in the middle of a line
after-footer    lines after the footer, which is written last
foreign         not an audit log (or not a coi-sentinel file at all)
unreadable      the file cannot be read
missing-file    a file of the chain is absent between two given files
duplicate-file  two files claim the same place in the chain
unlinked        a file does not continue the one before it (lines cut from its end)
cut             the chain ends before the record its sealed head file names (lines cut
                from the end of the log), or the head file is missing, forged or foreign
==============  ==========================================================================

The head file (:mod:`.head`) is checked when the files given include the chain's active file
in its own folder (``audit verify SESSION`` does); an export or a copy elsewhere is checked
without it, and a note says so.

After the first break in a file, its later lines are not checked against each other (one
deletion would otherwise report every line after it); checking resumes with the next file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson

from ..errors import TraceError
from ..trace.format import KIND, SCHEMA
from ..trace.lines import iter_lines, open_binary
from . import head as head_mod
from .chain import GENESIS, link, unseal

PROBLEM_KINDS = ("edited", "missing", "reordered", "duplicated", "unsealed", "truncated",
                 "after-footer", "foreign", "unreadable", "missing-file", "duplicate-file",
                 "unlinked", "cut")
NOTE_KINDS = ("open", "resumed", "chain-start", "chains", "head")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "line": self.line, "message": self.message}


@dataclass(slots=True)
class Segment:
    """One file of a chain: a header, its lines, maybe a footer (a physical file may hold
    several, one after the other, when it is an export)."""

    path: str
    first_line: int
    header_n: int
    header_h: str
    chain_id: str | None
    index: int | None
    prev: str | None
    prev_end: dict[str, Any] | None
    #: the name of the chain's head file, beside the active file (None: written before heads)
    head_name: str | None = None
    last_line: int = 0
    last_n: int | None = None
    last_h: str | None = None
    closed: bool = False
    lines: int = 0
    events: int = 0
    partial_line: int | None = None
    broken: bool = False
    #: first chain break: (line, _n found, _h found, _n expected)
    break_at: tuple[int, int, str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "first_line": self.first_line, "last_line": self.last_line,
                "chain": self.chain_id, "file": self.index, "first_n": self.header_n,
                "last_n": self.last_n, "head": self.last_h, "closed": self.closed,
                "lines": self.lines, "events": self.events, "intact": not self.broken}


@dataclass(slots=True)
class VerifyReport:
    files: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    #: chain id -> last hash of its last file (anchor it elsewhere)
    heads: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def lines(self) -> int:
        return sum(s.lines for s in self.segments)

    def ordered_paths(self) -> list[str]:
        """Physical files in chain order (for export): by chain, then file number."""
        out: list[str] = []
        for seg in sorted(self.segments, key=_chain_order(self.segments)):
            if seg.path not in out:
                out.append(seg.path)
        for path in self.files:
            if path not in out:
                out.append(path)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "lines": self.lines,
                "problems": [p.to_dict() for p in self.problems],
                "notes": [n.to_dict() for n in self.notes], "heads": self.heads,
                "segments": [s.to_dict() for s in self.segments]}


def verify(paths: Iterable[str | os.PathLike[str]]) -> VerifyReport:
    report = VerifyReport()
    seen: set[str] = set()
    for p in paths:
        path = os.fspath(p)
        key = os.path.realpath(path)
        if key in seen:
            continue
        seen.add(key)
        report.files.append(path)
        _scan(path, report)
    for seg in report.segments:
        if seg.break_at is not None:
            report.problems.append(_diagnose(seg))
    _link(report)
    _check_heads(report)
    order = {path: i for i, path in enumerate(report.files)}
    report.problems.sort(key=lambda f: (order.get(f.path, len(order)), f.line or 0))
    report.notes.sort(key=lambda f: (order.get(f.path, len(order)), f.line or 0))
    return report


# -- one file ---------------------------------------------------------------------------------

def _scan(path: str, report: VerifyReport) -> None:
    try:
        f = open_binary(path)
    except TraceError as err:
        report.problems.append(Finding("unreadable", path, None, err.detail))
        return
    seg: Segment | None = None
    try:
        with f:
            for lineno, raw, complete in iter_lines(f, path):
                seg = _scan_line(path, report, seg, lineno, raw, complete)
                if seg is None:
                    return                      # foreign: nothing more to check
    except TraceError as err:          # a gzip stream cut short or corrupt, a read error
        if seg is not None and err.reason == "truncated":
            seg.partial_line = err.line
        else:
            kind = "truncated" if err.reason == "truncated" else "unreadable"
            report.problems.append(Finding(kind, path, err.line, err.detail))
        return
    if seg is None:
        report.problems.append(Finding("foreign", path, None, "empty file: not an audit log"))


def _scan_line(path: str, report: VerifyReport, seg: Segment | None, lineno: int, raw: bytes,
               complete: bool) -> Segment | None:
    sealed = unseal(raw)
    if sealed is None:
        if lineno == 1:
            report.problems.append(Finding("foreign", path, 1, _foreign_reason(raw)))
            return None
        if not complete:
            seg.partial_line = lineno          # type: ignore[union-attr]
            return seg
        if seg is not None:
            _count(seg, lineno)
            if not seg.broken:
                seg.broken = True
                report.problems.append(Finding("unsealed", path, lineno,
                                               "line without a chain hash: inserted or mangled"))
        return seg
    numbered, n, h = sealed
    if numbered.startswith(b'{"record":"header"'):
        header = _parse_header(numbered)
        if header is None:
            if lineno == 1:
                report.problems.append(Finding("foreign", path, 1, "not an audit log: its header is not "
                                               f"a {KIND} header with a hash chain"))
                return None
            if seg is not None and not seg.broken:
                seg.broken = True
                report.problems.append(Finding("edited", path, lineno, "a header line that is not valid"))
            return seg
        chain = header["chain"]
        prev = chain.get("prev")
        new = Segment(path=path, first_line=lineno, header_n=n, header_h=h,
                      chain_id=str(chain.get("id")), index=chain.get("file"),
                      prev=prev if isinstance(prev, str) else None,
                      prev_end=chain.get("prev_end") if isinstance(chain.get("prev_end"), dict) else None,
                      head_name=chain.get("head") if isinstance(chain.get("head"), str) else None,
                      last_line=lineno, last_n=n, last_h=h, lines=1)
        report.segments.append(new)
        if link(new.prev or GENESIS, numbered) != h:
            new.broken = True
            report.problems.append(Finding("edited", path, lineno,
                                           "the header does not match its hash: edited"))
        return new
    if seg is None:
        # sealed lines before any header: the file's first lines were removed
        seg = Segment(path=path, first_line=lineno, header_n=n, header_h=h, chain_id=None,
                      index=None, prev=None, prev_end=None, broken=True)
        report.segments.append(seg)
        report.problems.append(Finding("missing", path, lineno,
                                       "the file does not start with its header: its first lines "
                                       "were deleted"))
    if not complete and not seg.broken and not _follows(seg, n, h, numbered):
        seg.partial_line = lineno               # cut inside the seal: an incomplete line
        return seg
    _count(seg, lineno)
    is_footer = numbered.startswith(b'{"record":"footer"')
    if not seg.broken:
        if seg.closed:
            seg.broken = True
            report.problems.append(Finding("after-footer", path, lineno,
                                           "a line after the footer: added after the file was closed"))
        elif not _follows(seg, n, h, numbered):
            seg.broken = True
            seg.break_at = (lineno, n, h, (seg.last_n or 0) + 1)
        elif not is_footer and numbered.startswith(b'{"type"'):
            seg.events += 1
    seg.last_line, seg.last_n, seg.last_h = lineno, n, h
    if is_footer:
        seg.closed = True
    return seg


def _follows(seg: Segment, n: int, h: str, numbered: bytes) -> bool:
    return (seg.last_n is not None and seg.last_h is not None and n == seg.last_n + 1
            and link(seg.last_h, numbered) == h)


def _count(seg: Segment, lineno: int) -> None:
    seg.lines += 1
    seg.last_line = lineno


def _foreign_reason(first: bytes) -> str:
    try:
        d = orjson.loads(first)
    except orjson.JSONDecodeError:
        return "not an audit log: the first line is not JSON"
    if isinstance(d, dict) and d.get("record") == "header" and d.get("kind") == KIND:
        return "not an audit log: a trace without a hash chain"
    return "not an audit log: the first line is not a coi-sentinel header"


def _parse_header(numbered: bytes) -> dict[str, Any] | None:
    try:
        d = orjson.loads(numbered)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(d, dict) or d.get("kind") != KIND or d.get("schema") != SCHEMA:
        return None
    chain = d.get("chain")
    if not isinstance(chain, dict) or not isinstance(chain.get("file"), int):
        return None
    return d


# -- classifying the first break of a file ----------------------------------------------------

def _diagnose(seg: Segment) -> Finding:
    assert seg.break_at is not None
    line, n, h, expected = seg.break_at
    if n == expected:
        return Finding("edited", seg.path, line,
                       f"record {n} does not match its hash: the line was edited")
    positions = _positions(seg)
    if n > expected:
        later = [ln for ln, _h in positions.get(expected, []) if ln > line]
        if later:
            return Finding("reordered", seg.path, line,
                           f"record {n} comes before record {expected} (line {later[0]}): "
                           "lines reordered")
        what = f"record {expected} is" if n == expected + 1 else f"records {expected}..{n - 1} are"
        return Finding("missing", seg.path, line, f"{what} missing before this line: deleted")
    earlier = [(ln, hh) for ln, hh in positions.get(n, []) if ln < line]
    same = [ln for ln, hh in earlier if hh == h]
    if same:
        return Finding("duplicated", seg.path, line, f"this line repeats line {same[0]} (record {n})")
    if earlier:
        return Finding("duplicated", seg.path, line,
                       f"record {n} appears again (first at line {earlier[0][0]}) with other content")
    return Finding("reordered", seg.path, line,
                   f"record {n} comes after record {expected - 1}: lines reordered")


def _positions(seg: Segment) -> dict[int, list[tuple[int, str]]]:
    """_n -> [(line, _h)] for the lines of one segment (read again: only for a broken file)."""
    out: dict[int, list[tuple[int, str]]] = {}
    try:
        with open_binary(seg.path) as f:
            for lineno, raw, _complete in iter_lines(f, seg.path):
                if lineno < seg.first_line:
                    continue
                if lineno > seg.last_line:
                    break
                sealed = unseal(raw)
                if sealed is not None:
                    out.setdefault(sealed[1], []).append((lineno, sealed[2]))
    except TraceError:
        pass                                    # the scan already reported it
    return out


# -- linking files ------------------------------------------------------------------------------

def _chain_order(segments: list[Segment]):
    first_seen: dict[str | None, int] = {}
    for i, seg in enumerate(segments):
        first_seen.setdefault(seg.chain_id, i)
    return lambda s: (first_seen[s.chain_id], s.index if s.index is not None else -1)


def _link(report: VerifyReport) -> None:
    chains: dict[str, list[Segment]] = {}
    for seg in report.segments:
        if seg.chain_id is not None:
            chains.setdefault(seg.chain_id, []).append(seg)
        elif seg.partial_line is not None:
            report.problems.append(_truncated(seg))
    if len(chains) > 1:
        report.notes.append(Finding("chains", report.files[0], None,
                                    f"{len(chains)} separate chains (different logs, or a chain "
                                    "restarted after its previous file was unusable)"))
    for chain_id, segs in chains.items():
        segs.sort(key=lambda s: s.index)        # type: ignore[arg-type, return-value]
        first = segs[0]
        if first.index:
            report.notes.append(Finding("chain-start", first.path, first.first_line,
                                        f"the chain starts at its file {first.index}: earlier "
                                        "files not given (or removed by retention)"))
        prev: Segment | None = None
        for seg in segs:
            if prev is not None and seg.index == prev.index:
                same = seg.header_h == prev.header_h
                report.problems.append(Finding(
                    "duplicate-file", seg.path, seg.first_line,
                    f"{'a copy of' if same else 'claims the same place in the chain as'} "
                    f"{_where(prev)} (chain file {seg.index})"))
                continue
            if prev is not None:
                _check_link(report, prev, seg)
            prev = seg
        assert prev is not None
        last = prev
        if last.partial_line is not None:
            report.problems.append(_truncated(last))
        elif not last.closed:
            report.notes.append(Finding("open", last.path, last.last_line,
                                        "no footer: still being written, or the writer stopped "
                                        "(a crash); lines after this one, if any, were lost"))
        if last.last_h is not None:
            report.heads[chain_id] = last.last_h


def _check_link(report: VerifyReport, a: Segment, b: Segment) -> None:
    if b.index is not None and a.index is not None and b.index > a.index + 1:
        missing = (f"file {a.index + 1} is" if b.index == a.index + 2
                   else f"files {a.index + 1}..{b.index - 1} are")
        report.problems.append(Finding("missing-file", b.path, b.first_line,
                                       f"chain {missing} missing between {_where(a)} and this file"))
        if a.partial_line is not None:
            report.problems.append(_truncated(a))
        return
    end = b.prev_end or {}
    if a.partial_line is not None:
        if end.get("partial") and b.prev == a.last_h:
            report.notes.append(Finding("resumed", a.path, a.partial_line,
                                        "incomplete last line: the writer died mid-write; "
                                        f"{_where(b)} continues the chain and records it"))
        else:
            report.problems.append(_truncated(a))
    if b.prev != a.last_h or (a.last_n is not None and b.header_n != a.last_n + 1):
        report.problems.append(Finding("unlinked", b.path, b.first_line,
                                       f"does not continue {_where(a)}: lines were cut from its "
                                       f"end (after line {a.last_line}), or it was edited"))
    elif not a.closed:
        if end.get("closed") is False:
            if a.partial_line is None:
                report.notes.append(Finding("resumed", a.path, a.last_line,
                                            "no footer: the writer stopped without closing the "
                                            f"file (a crash); {_where(b)} continues the chain"))
        else:
            report.problems.append(Finding("unlinked", a.path, a.last_line,
                                           f"the footer is missing although {_where(b)} says the "
                                           "file was closed: lines cut from its end"))


def _truncated(seg: Segment) -> Finding:
    return Finding("truncated", seg.path, seg.partial_line,
                   "incomplete last line: the file was cut, or the writer was killed mid-write")


def _where(seg: Segment) -> str:
    name = Path(seg.path).name
    return name if seg.first_line == 1 else f"{name}:{seg.first_line}"


# -- the sealed head: was the end of the log cut? ------------------------------------------------

def _check_heads(report: VerifyReport) -> None:
    chains: dict[str, list[Segment]] = {}
    for seg in report.segments:
        if seg.chain_id is not None and seg.index is not None:
            chains.setdefault(seg.chain_id, []).append(seg)
    for chain_id, segs in chains.items():
        last = max(segs, key=lambda s: s.index)     # type: ignore[arg-type, return-value]
        name = last.head_name
        if name is None or "/" in name:
            continue                                # a log written before head files
        folder = Path(last.path).parent
        head_file = folder / name
        given = {os.path.realpath(p) for p in report.files}
        active = _active_name(last, name)
        if os.path.realpath(folder / active) not in given:
            if os.path.exists(head_file) and not (folder / active).exists():
                pass                                # the active file was deleted: check below
            else:
                continue                            # a copy, an export or a subset: no head
        try:
            head = head_mod.read(head_file)
        except FileNotFoundError:
            report.problems.append(Finding("cut", last.path, None,
                                           f"its sealed head file {name} is missing: the end of "
                                           "the log cannot be checked (deleted?)"))
            continue
        except (OSError, head_mod.HeadError) as err:
            report.problems.append(Finding("cut", str(head_file), None, f"unusable head file: {err}"))
            continue
        if head["chain"] != chain_id:
            report.notes.append(Finding("head", str(head_file), None,
                                        f"the head file belongs to chain {head['chain'][:12]}, "
                                        f"not {chain_id[:12]}: a newer log replaced this one"))
            continue
        key = head_mod.load_key(folder, create=False)
        if key is None:
            report.notes.append(Finding("head", str(head_file), None,
                                        f"the head's seal is not checked: no key at "
                                        f"{head_mod.key_path(folder)}"))
        elif not head_mod.seal_ok(head, key):
            report.problems.append(Finding("cut", str(head_file), None,
                                           "the head file's seal does not match: it was edited "
                                           "(or sealed with another host's key)"))
            continue
        _compare_head(report, last, head, name)


def _active_name(seg: Segment, head_name: str) -> str:
    stem = head_name[:-len(".head")] if head_name.endswith(".head") else head_name
    suffix = Path(seg.path).name.partition(".")[2]
    # agent-1.000003.jsonl -> agent-1.jsonl; the active file itself keeps its name
    parts = suffix.split(".", 1)
    if parts[0].isdigit() and len(parts) == 2:
        suffix = parts[1]
    return f"{stem}.{suffix.removesuffix('.gz')}" if suffix else stem


def _compare_head(report: VerifyReport, last: Segment, head: dict[str, Any], name: str) -> None:
    when = head["time"]
    if head["file"] > (last.index or 0):
        report.problems.append(Finding(
            "cut", last.path, last.last_line,
            f"the chain ends in its file {last.index}, but its head file {name} (sealed "
            f"{when}) says it reached file {head['file']}, record {head['n']}: later files "
            "were removed"))
        return
    if head["file"] < (last.index or 0) or last.broken or last.last_n is None:
        return          # the head lags (a crash before it was rewritten), or already reported
    if head["n"] > last.last_n:
        cut = head["n"] - last.last_n
        report.problems.append(Finding(
            "cut", last.path, last.partial_line or last.last_line + 1,
            f"the log ends at record {last.last_n} (line {last.last_line}), but its head file "
            f"{name} (sealed {when}) says record {head['n']} was written: {cut} record"
            f"{'s' * (cut != 1)} cut from its end"))
        return
    if head["n"] == last.last_n:
        found = last.last_h
    else:
        found = next((h for _ln, h in _positions(last).get(head["n"], [])), None)
    if found != head["h"]:
        report.problems.append(Finding(
            "cut", last.path, None,
            f"record {head['n']} does not match the hash its head file {name} sealed: "
            "the end of the log was rewritten"))
