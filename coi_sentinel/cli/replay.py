"""``coi-sentinel replay``: the rule engine over recorded traces and audit logs, no kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..heap import settle
from ..replay.cases import NETWORK_MODES
from ..outputs.cli import AlertSinks, alert_output_options, print_outputs_status
from .output import Clock, alert_line, echo_json, json_option

#: exit status when at least one alert fired (0: none, 1: error, 2: usage)
EXIT_ALERTS = 3


@click.command()
@click.argument("traces", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rules", "rule_paths", multiple=True, metavar="PATH", type=click.Path(exists=True),
              help="Rule file or folder added to the bundled rules (repeatable).")
@click.option("--no-bundled", is_flag=True, help="Use only the --rules given, not the bundled rules.")
@json_option
@click.option("--lenient", is_flag=True,
              help="Skip and count bad lines (truncated, not JSON, unknown event type) instead "
                   "of stopping at the first one. A bad header still stops.")
@click.option("--each", is_flag=True,
              help="Replay every trace on its own (fresh process table and rule state); by "
                   "default the traces are one stream, like the rotated files of an audit log.")
@click.option("--session-network", type=click.Choice(NETWORK_MODES), metavar="MODE",
              help="Evaluate as if the traces came from a session in this network mode "
                   "(restricted, allowlist, open): for rules on session.network.")
@alert_output_options(metrics=False)
@click.pass_context
def replay(ctx: click.Context, traces: tuple[Path, ...], rule_paths: tuple[str, ...],
           no_bundled: bool, as_json: bool, lenient: bool, each: bool,
           session_network: str | None, alerts_to: tuple[str, ...], outputs_config: str | None,
           fmt: str | None) -> None:
    """Run the threat rules over recorded traces (or audit logs) and print the alerts.

    No root, no kernel: the events go through the same process table and rule engine as in
    `watch`, with the traces' own timestamps, so sequence and threshold windows behave exactly
    as they did live. Traces come from `record`, `watch --output` and session audit logs (plain
    or gzip; `-` reads standard input; devices and FIFOs are refused). Alerts go to stdout (JSON lines with --json, each with the "trace" and "line" of
    the event that completed it); a summary goes to stderr.

    Exit status: 0 no alert fired, 3 at least one fired, 1 an error (a bad line names its file
    and line; see --lenient), 2 usage.

    \b
    Examples:
      coi-sentinel replay shell.jsonl.gz
      coi-sentinel replay --json --rules my-rules/ build.jsonl > alerts.jsonl
      coi-sentinel replay --lenient ~/.local/state/coi-sentinel/audit/agent-1*.jsonl*
      coi-sentinel replay --each rules/tests/traces/*.jsonl.gz
      coi-sentinel replay --format falco audit.jsonl > falco-alerts.jsonl
      coi-sentinel replay --alerts-to http://127.0.0.1:2801/ audit.jsonl
    """
    from ..replay import replay as run_replay
    from ..rules import SessionInfo, load_ruleset

    if no_bundled and not rule_paths:
        raise click.UsageError("--no-bundled needs --rules PATH")
    ruleset = load_ruleset([Path(p) for p in rule_paths] or None, replace_bundled=no_bundled)
    session = SessionInfo(network=session_network) if session_network else None
    # every header first: a foreign file or a wrong schema stops before anything is printed,
    # and each trace's recorded wall clock is known for its alerts
    # `-` (standard input) can be read once: its header is checked as it is replayed
    clocks = {str(path): Clock() if str(path) == "-" else _clock(path) for path in traces}
    hosts = {str(path): None if str(path) == "-" else _hostname(path) for path in traces}
    sinks = AlertSinks.open(alerts_to, outputs_config, fmt, as_json=as_json)
    as_json = sinks.fmt == "json"

    def on_alert(hit) -> None:
        offset, host = clocks[hit.trace].offset_ns, hosts[hit.trace]
        sinks.emit(hit.alert, wall_offset_ns=offset, hostname=host)
        if sinks.falco:
            click.echo(sinks.falco_line(hit.alert, wall_offset_ns=offset, hostname=host))
        elif as_json:
            echo_json(hit.to_dict(wall_offset_ns=offset, hostname=host))
        else:
            click.echo(alert_line(hit.alert, clocks[hit.trace]))
            click.echo(f"{'':13}at {hit.trace}:{hit.line}")

    def on_trace(stats) -> None:
        if stats.lost:
            click.echo(f"coi-sentinel: {stats.path}: {stats.lost} events were lost when it was "
                       "recorded; alerts may be missing", err=True)
        for err in stats.errors:
            click.echo(f"coi-sentinel: skipped {err}", err=True)

    settle()                    # rules and outputs live as long as the replay (coi_sentinel/heap.py)
    try:
        result = run_replay([str(p) for p in traces], ruleset, lenient=lenient, each=each,
                            session=session, on_alert=on_alert, on_trace=on_trace)
    finally:
        outputs_status = sinks.close()
    summary = {
        "record": "summary", "traces": len(result.traces), "events": result.events,
        "rules": result.rules, "alerts": dict(sorted(result.by_rule.items())),
        "skipped": dict(result.skipped), "lost": sum(t.lost for t in result.traces),
        "seconds": round(result.seconds, 3),
    }
    if outputs_status is not None:
        summary["outputs"] = outputs_status
    if as_json:
        echo_json(summary, file=sys.stderr)
    else:
        _print_summary(summary)
    print_outputs_status(outputs_status, as_json)
    ctx.exit(EXIT_ALERTS if result.alerts else 0)


def _clock(path: Path) -> Clock:
    """Times shown as the recording host's wall clock (the header's start_time)."""
    from ..replay import wall_offset_ns
    from ..trace.reader import TraceReader

    with TraceReader(path) as reader:
        offset = wall_offset_ns(reader.header)
    clock = Clock()
    if offset is not None:
        clock.offset_ns = offset
    return clock


def _hostname(path: Path) -> str | None:
    """The recording host's name (the header's hostname), for the alerts' "hostname"."""
    from ..trace.reader import TraceReader

    with TraceReader(path) as reader:
        host = reader.header.get("hostname")
    return host if isinstance(host, str) and host else None


def _print_summary(s: dict) -> None:
    alerts = s["alerts"]
    total = sum(alerts.values())
    rate = f", {s['events'] / s['seconds']:,.0f} events/s" if s["seconds"] > 0 else ""
    click.echo(f"coi-sentinel: replayed {s['events']} events from {s['traces']} trace"
               f"{'s' if s['traces'] != 1 else ''} in {s['seconds']} s{rate}", err=True)
    click.echo(f"coi-sentinel: {total} alert{'s' if total != 1 else ''} from {s['rules']} rules"
               + (f" ({', '.join(f'{k} {v}' for k, v in alerts.items())})" if alerts else ""),
               err=True)
    if s["skipped"]:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(s["skipped"].items()))
        click.echo(f"coi-sentinel: skipped {sum(s['skipped'].values())} bad lines ({parts})",
                   err=True)
