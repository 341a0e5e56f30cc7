"""``coi-sentinel top``: a live view of the daemon's sessions and the host scope."""

from __future__ import annotations

import sys
import time

import click

from .output import echo_json, json_option


@click.command()
@click.option("--socket", "socket_path", metavar="PATH", envvar="COI_SENTINEL_SOCKET",
              help="The daemon's socket (default /run/coi-sentinel/sentinel.sock).")
@click.option("-i", "--interval", type=click.FloatRange(0.2, 60), default=1.0, show_default=True,
              metavar="SECONDS", help="How often the view refreshes (alerts show as they come).")
@click.option("--once", is_flag=True,
              help="Print one snapshot (rates over --interval) and exit, instead of the live view.")
@json_option
def top(socket_path: str | None, interval: float, once: bool, as_json: bool) -> None:
    """A live view of the sessions the daemon watches and of the host scope: each session's
    state (running, frozen, orphan), events per second by type, alerts by severity, actions,
    drops, the container's CPU and memory (from its cgroup), its busiest processes, and the
    last alerts as they fire. Fits an 80x24 terminal.

    \b
    Keys: up/down select, / filter by text, s cycle the state filter (running, frozen,
    orphan), a only sessions with alerts, enter the session's process tree, p pause,
    r resume, k kill (each asks y/n), q quit.

    \b
    Examples:
      sudo coi-sentinel top
      coi-sentinel top --socket /run/coi-sentinel/sentinel.sock    # as a member of its group
      coi-sentinel top --once --json | jq '.scopes[] | {name, state, alert_total}'
    """
    from ..report.live import DaemonSource, Tracker, frame_text

    source = DaemonSource(socket_path)
    try:
        if once or as_json:
            tracker = Tracker()
            tracker.update(source.status())
            time.sleep(interval)
            frame = tracker.update(source.status())
            if as_json:
                echo_json(frame.to_dict())
            else:
                click.echo(frame_text(frame), nl=False)
            return
        if not sys.stdout.isatty():
            raise click.UsageError("the live view needs a terminal (use --once, or --json)")
        from ..report.tui import TopApp

        TopApp(source, interval=interval).run()
    finally:
        source.close()
