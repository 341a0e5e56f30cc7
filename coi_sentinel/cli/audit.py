"""``coi-sentinel audit``: verify, show and export audit logs. Needs neither root nor a kernel."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..audit import severity
from ..events import codec
from .output import Clock, echo_json, json_option, table_row


def _sessions_audit_dir() -> str:
    from ..host.paths import audit_dir

    return str(audit_dir())


log_dir_option = click.option(
    "--log-dir", default=_sessions_audit_dir, show_default="$XDG_STATE_HOME/coi-sentinel/audit",
    envvar="COI_SENTINEL_LOG_DIR", metavar="DIR",
    help="Where session logs are (a SESSION name is looked up here).")


@click.group()
def audit() -> None:
    """Check, read and export audit logs: the hash-chained traces that `watch --output` and
    sessions write (docs/traces.md).

    A log is named by a session name, the file it is being written to (its rotated files are
    included), one rotated file, or a directory.

    \b
    Examples:
      coi-sentinel audit verify ~/.local/state/coi-sentinel/audit/agent-1.jsonl
      coi-sentinel audit show agent-1 --severity high
      coi-sentinel audit export agent-1 -o agent-1-evidence.jsonl.gz
    """


@audit.command("verify")
@click.argument("sources", nargs=-1, required=True, metavar="SESSION|FILE...")
@log_dir_option
@json_option
def verify_cmd(sources: tuple[str, ...], log_dir: str, as_json: bool) -> None:
    """Check that audit log files are complete and unchanged: no line edited, deleted,
    duplicated or moved, no file missing, cut or foreign. Reports the first broken line of
    each file, and the chain's last hash (keep it elsewhere to anchor the log).

    Exit status: 0 intact, 1 any problem (or an error).

    \b
    Examples:
      coi-sentinel audit verify agent-1
      coi-sentinel audit verify logs/watch.jsonl logs/watch.000001.jsonl
      coi-sentinel audit verify --json ~/.local/state/coi-sentinel/audit/
    """
    from ..audit.query import resolve_sources
    from ..audit.verify import verify

    report = verify(resolve_sources(sources, log_dir))
    if as_json:
        echo_json(report.to_dict())
    else:
        for finding in report.problems:
            click.echo(f"problem: {finding}")
        for finding in report.notes:
            click.echo(f"note: {finding}")
        for chain_id, head in report.heads.items():
            click.echo(f"head of chain {chain_id[:12]}: {head}")
        files = len(report.files)
        if report.ok:
            click.echo(f"intact: {report.lines} lines in {files} file{'s' * (files != 1)}")
        else:
            n = len(report.problems)
            click.echo(f"NOT intact: {n} problem{'s' * (n != 1)} in {files} "
                       f"file{'s' * (files != 1)}; the first: {report.problems[0]}")
    if not report.ok:
        # not ctx.exit(1): main() runs click with standalone_mode=False, which turns an Exit
        # into a return value that main() does not pass on
        sys.exit(1)


@audit.command("show")
@click.argument("source", required=False, metavar="[SESSION|FILE]")
@click.option("--since", metavar="WHEN", help="Only what was logged since WHEN: a duration ago "
              "(30m, 2h, 3d) or a time (2024-05-01T12:00, UTC).")
@click.option("--severity", "min_severity", metavar="LEVEL",
              type=click.Choice(severity.LEVELS, case_sensitive=False),
              help="Only alerts of this severity or above.")
@click.option("--rule", "rules", multiple=True, metavar="ID",
              help="Only alerts (and actions) of this rule; shell wildcards work (repeatable).")
@click.option("--context", "with_context", is_flag=True,
              help="Also list the events logged as each alert's context.")
@log_dir_option
@json_option
def show_cmd(source: str | None, since: str | None, min_severity: str | None,
             rules: tuple[str, ...], with_context: bool, log_dir: str, as_json: bool) -> None:
    """Show what a log holds: alerts (with the process ancestry each carries) and actions
    first, then a summary of events, drops and monitor records. Without SOURCE, every log in
    --log-dir. Damaged lines are skipped and counted; `audit verify` judges them.

    \b
    Examples:
      coi-sentinel audit show agent-1
      coi-sentinel audit show ./watch.jsonl --since 2h --severity high
      coi-sentinel audit show agent-1 --rule 'shell_*' --context
      coi-sentinel audit show agent-1 --json | jq .rule
    """
    from ..audit.query import Filter, collect, parse_since, resolve_sources

    try:
        since_t = parse_since(since) if since else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--since") from None
    flt = Filter(since=since_t, rules=rules,
                 min_severity=severity.rank(min_severity) if min_severity else None)
    summary = collect(resolve_sources([source or log_dir], log_dir), flt)
    if as_json:
        for entry in summary.alerts:
            obj: dict[str, Any] = {**entry.record, "at": f"{entry.path}:{entry.line}"}
            if with_context:
                obj["context"] = [codec.to_dict(ev) for ev in entry.context]
            echo_json(obj)
        for entry in summary.actions:
            echo_json({**entry.record, "at": f"{entry.path}:{entry.line}"})
        echo_json({"record": "summary", "files": summary.files, "events": summary.events,
                   "records": dict(summary.records), "drops": summary.drops,
                   "monitor": summary.monitor, "skipped": dict(summary.skipped),
                   "first_time": summary.first_time, "last_time": summary.last_time})
        return
    _show_text(summary, with_context)


def _show_text(summary, with_context: bool) -> None:
    click.echo(f"ALERTS ({len(summary.alerts)})")
    clock = Clock()
    for entry in summary.alerts:
        rec = entry.record
        sev = str(severity.of_alert(rec) or "?")
        rule = rec.get("rule", rec.get("rule_id", "?"))
        click.echo(f"{str(rec.get('time', ''))[:23]:<24} {sev[:9]:<9} {rule}"[:80])
        text = rec.get("output", rec.get("message"))
        if text:
            click.echo(f"  {text}"[:80])
        for label, proc in _lineage(rec):
            click.echo(f"  {label:<8} {_proc_text(proc)}"[:80])
        if entry.context:
            click.echo(f"  context  {len(entry.context)} events before it"
                       + ("" if with_context else " (--context lists them)"))
            if with_context:
                for ev in entry.context:
                    click.echo("    " + table_row(ev, clock, width=76))
        click.echo(f"  at       {entry.path}:{entry.line}"[:80])
    click.echo(f"ACTIONS ({len(summary.actions)})")
    for entry in summary.actions:
        rec = entry.record
        what = rec.get("action", rec.get("kind", "?"))
        rest = " ".join(f"{k}={v}" for k, v in rec.items()
                        if k not in ("record", "time", "action", "kind") and not isinstance(v, (dict, list)))
        click.echo(f"{str(rec.get('time', ''))[:23]:<24} {str(what)[:9]:<9} {rest}"[:80])
    click.echo("SUMMARY")
    span = f" ({summary.first_time} to {summary.last_time})" if summary.first_time else ""
    click.echo(f"  {len(summary.files)} file(s){span}"[:80])
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.records.items()))
    click.echo(f"  {summary.events} events; records: {kinds or 'none'}"[:80])
    for rec in summary.drops:
        fields = " ".join(f"{k}={v}" for k, v in rec.items() if k not in ("record", "time"))
        click.echo(f"  drops: {fields}"[:80])
    for rec in summary.monitor:
        fields = " ".join(f"{k}={v}" for k, v in rec.items() if k not in ("record", "time", "event"))
        click.echo(f"  monitor: {rec.get('time', '')} {rec.get('event', '?')} {fields}"[:80])
    if summary.skipped:
        total = sum(summary.skipped.values())
        why = ", ".join(f"{k} {v}" for k, v in summary.skipped.items())
        click.echo(f"  {total} damaged lines skipped ({why}): run `coi-sentinel audit verify`"[:80])


def _lineage(rec: dict[str, Any]) -> list[tuple[str, Any]]:
    """The acting process and its ancestry, as the alert carries them."""
    out: list[tuple[str, Any]] = []
    proc = rec.get("process", rec.get("proc"))
    if proc is not None:
        out.append(("process", proc))
    for i, anc in enumerate(rec.get("ancestry", rec.get("ancestors")) or ()):
        out.append(("parent" if i == 0 else "ancestor", anc))
    return out


def _proc_text(proc: Any) -> str:
    if not isinstance(proc, dict):
        return str(proc)
    pid = proc.get("pid", "?")
    name = proc.get("exe") or proc.get("name") or proc.get("comm") or ""
    cmd = proc.get("cmdline")
    if cmd is None and isinstance(proc.get("argv"), list):
        cmd = " ".join(map(str, proc["argv"]))
    return f"{pid:>7} {name} {cmd or ''}".rstrip()


@audit.command("export")
@click.argument("sources", nargs=-1, required=True, metavar="SESSION|FILE...")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write (gzip when it ends in .gz; mode 0600).")
@click.option("--force", is_flag=True, help="Export even if verification finds problems.")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@log_dir_option
@json_option
def export_cmd(sources: tuple[str, ...], output: str, force: bool, overwrite: bool,
               log_dir: str, as_json: bool) -> None:
    """Copy a log's files, in chain order, into one file that verifies and replays as they
    did: evidence to hand over. Verifies first and refuses a damaged log unless --force.

    \b
    Examples:
      coi-sentinel audit export agent-1 -o agent-1.jsonl.gz
      coi-sentinel audit export ./watch.jsonl -o /tmp/bundle.jsonl --overwrite
      coi-sentinel audit verify /tmp/bundle.jsonl
    """
    from ..audit.export import export
    from ..audit.query import resolve_sources

    result = export(resolve_sources(sources, log_dir), output, force=force, overwrite=overwrite)
    report = result.report
    assert report is not None
    if as_json:
        echo_json({"output": result.path, "lines": result.lines, "files": result.files,
                   "left_out": [f"{p}:{ln}" for p, ln in result.left_out], "ok": report.ok,
                   "problems": [p.to_dict() for p in report.problems], "heads": report.heads})
        return
    for path, line in result.left_out:
        click.echo(f"left out the incomplete line {path}:{line}", err=True)
    if not report.ok:
        click.echo(f"exported despite {len(report.problems)} problem(s); the first: "
                   f"{report.problems[0]}", err=True)
    click.echo(f"{result.path}: {result.lines} lines from {len(result.files)} file(s)")
