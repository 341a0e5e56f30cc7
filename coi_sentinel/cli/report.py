"""``coi-sentinel report``: what a session did, as one HTML page (or Markdown) built from its
audit log. Needs neither root nor a kernel."""

from __future__ import annotations

from pathlib import Path

import click

from .audit import log_dir_option
from .output import json_option


@click.command()
@click.argument("source", metavar="SESSION|AUDIT_LOG")
@click.option("-o", "--output", metavar="FILE",
              help="Where to write; '-' for standard output. Default: a session's report goes to "
                   "$XDG_STATE_HOME/coi-sentinel/reports/SESSION.html (Markdown to standard output).")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]),
              help="html (one self-contained page, default) or md (text). Default: from FILE's "
                   "suffix (.md), else html.")
@log_dir_option
@json_option
def report(source: str, output: str | None, fmt: str | None, log_dir: str, as_json: bool) -> None:
    """Build a report of a session from its audit log: a summary (agent, workspace, duration,
    network mode, verdict, whether the audit chain is intact), the alerts over time by
    severity, the process tree with the alerting processes marked, network destinations with
    the bytes sent, files written by folder, secrets read and by whom, the actions taken with
    their latencies, and events lost.

    The HTML page has no external asset (it works offline and can be mailed as it is).
    SESSION is looked up in --log-dir; AUDIT_LOG is a log's active file (its rotated files are
    included), one rotated file or an export. --json prints the report's data instead.

    \b
    Examples:
      coi-sentinel report coi-1a2b3c4d-1                # writes and prints the page's path
      coi-sentinel report coi-1a2b3c4d-1 -o /tmp/r.html
      coi-sentinel report ./watch.jsonl --format md | less
      coi-sentinel report coi-1a2b3c4d-1 --json | jq .summary.verdict
    """
    from ..audit.query import resolve_sources
    from ..report import build
    from ..report import output as out

    files = resolve_sources([source], log_dir)
    fmt = "json" if as_json else out.format_of(output, fmt)
    text = out.render(build(files), fmt)
    if output == "-" or (output is None and fmt != "html"):
        click.echo(text, nl=False)
        return
    if output is None:
        name = Path(files[0]).name.split(".")[0] if Path(source).exists() else source
        path = out.write(text, out.default_path(name, fmt), give_to_sudo_user=True)
    else:
        path = out.write(text, Path(output))
    click.echo(str(path))
