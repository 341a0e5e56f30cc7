"""``coi-sentinel rules``: check rule files and list the fields conditions can use.

Neither command needs root, bcc or a kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .output import echo_json, json_option


@click.group()
def rules() -> None:
    """Check threat rule files and show the field catalogue.

    \b
    Examples:
      coi-sentinel rules lint                      # the bundled rules
      coi-sentinel rules lint ~/my-rules/          # bundled rules plus mine
      coi-sentinel rules fields
      coi-sentinel rules import-sigma sigma/rules/linux/ -o sigma.yaml
    """


@rules.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--only", "replace_bundled", is_flag=True,
              help="Check PATHS alone, without the bundled rules (as watch --rules DIR --replace).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--sigma", "sigma_paths", multiple=True, metavar="DIR", type=click.Path(exists=True, path_type=Path),
              help="Sigma rules converted and checked as watch --sigma loads them (repeatable).")
@json_option
def lint(paths: tuple[Path, ...], replace_bundled: bool, strict: bool, sigma_paths: tuple[Path, ...],
         as_json: bool) -> None:
    """Report every error and warning in rule files (the bundled rules, then PATHS).

    PATHS are rule files or directories of *.yaml files, loaded after the bundled rules the
    way the watcher loads them, so appends and overrides are checked too. Each problem is
    printed as path:line: level: message. Exit code 0 when there is no error, 1 when there is
    one (or a warning, with --strict).

    \b
    Examples:
      coi-sentinel rules lint
      coi-sentinel rules lint my-rules.yaml --strict
      coi-sentinel rules lint --only ./rules-dir --json
      coi-sentinel rules lint --sigma sigma/rules/linux/
    """
    from ..rules.lint import lint as run_lint

    report = run_lint(list(paths), replace_bundled=replace_bundled, sigma_paths=list(sigma_paths))
    if as_json:
        echo_json(report.to_dict())
    else:
        for diag in report.diagnostics:
            click.echo(str(diag))
        click.echo(report.summary(), err=True)
    if report.errors or (strict and report.warnings):
        # sys.exit, not ctx.exit: main() runs click with standalone_mode=False, which turns an
        # Exit into a return value
        sys.exit(1)


@rules.command()
@click.argument("category", required=False)
@json_option
def fields(category: str | None, as_json: bool) -> None:
    """List the fields rule conditions and outputs can use.

    CATEGORY limits the list to one prefix: evt, proc, user, container, session, net, fd,
    file or priv. EVENTS says for which event types a field has a value; on other events a
    comparison with it is false.

    \b
    Examples:
      coi-sentinel rules fields
      coi-sentinel rules fields net
      coi-sentinel rules fields --json
    """
    from ..rules.fields import CATEGORIES, catalogue

    if category is not None and category not in CATEGORIES:
        raise click.BadParameter(f"one of: {', '.join(CATEGORIES)}", param_hint="CATEGORY")
    rows = [r for r in catalogue() if category is None or r["name"].split(".", 1)[0] == category]
    if as_json:
        for row in rows:
            echo_json(row)
        return
    for row in rows:
        name = row["name"] if row["name"].endswith("]") or not row["indexed"] else row["name"] + "[n]"
        events = "all events" if row["events"] == "all" else "on " + ", ".join(row["events"])
        click.echo(f"{name:<26} {row['type']:<18} {events if len(events) <= 34 else ''}".rstrip())
        for line in _wrap(row["description"], 74):
            click.echo(f"    {line}")
        if len(events) > 34:
            for line in _wrap(events, 74):
                click.echo(f"    {line}")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


@rules.command("import-sigma")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the converted rules to this rule file (default: stdout).")
@json_option
def import_sigma(paths: tuple[Path, ...], out: Path | None, as_json: bool) -> None:
    """Convert Sigma rules (product linux) into a coi-sentinel rule file, through pySigma.

    PATHS are Sigma rule files or directories (searched recursively for *.yml and *.yaml).
    Each rule is reported on stderr as converted or skipped with the reason (path:line);
    a summary counts the skipped rules by reason. Converted rules keep the Sigma id, title,
    level, tags and references, and pass `rules lint`. Log sources: process_creation,
    file_event, file_delete, network_connection, and service auditd (docs/rules.md). Exit
    code 0 when at least one rule converted or none was given, 1 when all were skipped.

    \b
    Examples:
      coi-sentinel rules import-sigma sigma/rules/linux/ -o ~/my-rules/sigma.yaml
      coi-sentinel rules import-sigma proc_creation_lnx_susp_curl.yml
      coi-sentinel rules import-sigma ./sigma --json > report.json
    """
    from ..rules.sigma import convert_paths

    report = convert_paths(list(paths))
    if as_json:
        echo_json({"results": [r.to_dict() for r in report.results], "converted": len(report.converted),
                   "skipped": len(report.skipped), "summary": report.summary()})
    else:
        for result in report.results:
            click.echo(result.text(), err=True)
        click.echo(report.summary(), err=True)
    if out is not None:
        out.write_text(report.yaml())
    elif not as_json:
        click.echo(report.yaml(), nl=False)
    if report.results and not report.converted:
        sys.exit(1)


from .rule_tests import run_tests as _run_tests; rules.add_command(_run_tests)  # noqa: E402,E702


@rules.command()
@click.option("--socket", "sock", metavar="PATH", default=None,
              help="The daemon's socket (default $COI_SENTINEL_SOCKET or /run/coi-sentinel/sentinel.sock).")
@json_option
def reload(sock: str | None, as_json: bool) -> None:
    """Reload the running daemon's rules without restarting anything: the new files are linted
    first and swapped in at once for every session; on any error the old set stays and the
    first error is printed with its path:line (exit 1). Each session's audit log records the
    new rule set's sha256. `kill -HUP` of the daemon does the same.

    \b
    Examples:
      sudo coi-sentinel rules reload
      sudo coi-sentinel rules reload --json
    """
    from ..daemon.client import DaemonClient

    with DaemonClient.connect(sock) as c:
        r = c.request("reload")
    if as_json:
        echo_json(r)
    else:
        click.echo(f"rules reloaded: {r['rules']} rules, sha256 {r['hash']}")
