"""``audit export``: a log's files, in chain order, copied line for line into one file.

Lines are copied byte for byte, so the export verifies exactly as the files did (the chain runs
through the headers and footers of the files it joins) and replays as one trace. An incomplete
last line (a writer killed mid-write) is left out, since nothing can follow it on the same line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import AuditError, TraceError
from ..trace.lines import iter_lines, open_binary
from ..trace.writer import OutputFile
from .verify import VerifyReport, verify


@dataclass(slots=True)
class ExportResult:
    path: str
    lines: int = 0
    files: list[str] = field(default_factory=list)
    #: incomplete last lines left out: (file, line)
    left_out: list[tuple[str, int]] = field(default_factory=list)
    report: VerifyReport | None = None


def export(sources: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *,
           force: bool = False, overwrite: bool = False) -> ExportResult:
    """Verify ``sources``, then write them to ``out`` (gzip if it ends in ``.gz``, mode 0600).

    Raises AuditError when verification finds problems, unless ``force``.
    """
    paths = [os.fspath(p) for p in sources]
    out_path = os.fspath(out)
    if any(os.path.exists(out_path) and os.path.samefile(out_path, p) for p in paths):
        raise AuditError(f"{out_path} is one of the files to export", path=out_path)
    report = verify(paths)
    if not report.ok and not force:
        raise AuditError(f"verification failed: {report.problems[0]}", path=out_path,
                         hint="`audit verify` shows all problems; --force exports anyway")
    result = ExportResult(out_path, report=report)
    try:
        dest = OutputFile(out_path, overwrite=overwrite)
    except TraceError as err:
        raise AuditError(f"cannot export: {err}", path=out_path) from err
    try:
        for path in report.ordered_paths():
            result.files.append(path)
            _copy(path, dest, result)
        dest.close()
    except TraceError as err:
        dest.discard()
        raise AuditError(f"cannot export: {err}", path=out_path) from err
    except BaseException:
        dest.discard()
        raise
    return result


def _copy(path: str, dest: OutputFile, result: ExportResult) -> None:
    with open_binary(path) as f:
        try:
            for lineno, raw, complete in iter_lines(f, path):
                if not complete:
                    result.left_out.append((path, lineno))
                    return
                dest.write(raw + b"\n")
                result.lines += 1
        except TraceError as err:
            if err.reason != "truncated" or err.line is None:
                raise
            result.left_out.append((path, err.line))   # a gzip stream cut short
