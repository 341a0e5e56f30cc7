"""``coi-sentinel status``: the daemon and its sessions, and any standalone monitor."""

from __future__ import annotations

import click

from .output import echo_json, json_option


@click.command()
@click.option("--socket", "sock", metavar="PATH", default=None,
              help="The daemon's socket (default $COI_SENTINEL_SOCKET or /run/coi-sentinel/sentinel.sock).")
@json_option
def status(sock: str | None, as_json: bool) -> None:
    """Show the host's daemon (rules, events, drops, kills) with every session it watches
    (state: running, frozen, orphan), and every standalone monitor (`watch`, `record`) with
    what it watches. A standalone monitor whose process is gone without cleaning up is shown
    as DEAD.

    \b
    Examples:
      sudo coi-sentinel status
      sudo coi-sentinel status --json | jq '.daemon.scopes[] | {name, state, alerts}'
    """
    from ..daemon import protocol as P
    from ..daemon.client import DaemonClient
    from ..host.status import read_all

    daemon = None
    why = None
    try:
        with DaemonClient.connect(sock, timeout=5) as c:
            daemon = c.request("status")
    except P.DaemonError as err:
        why = str(err)
    monitors = [m for m in read_all() if m.get("kind") != "daemon"]
    if as_json:
        echo_json({"daemon": daemon, "daemon_error": why, "monitors": monitors})
        return
    if daemon is None:
        click.echo(f"daemon: not running ({why})")
    else:
        d = daemon["daemon"]
        events = sum((d.get("events") or {}).values())
        drops = sum((d.get("drops") or {}).values())
        click.echo(f"daemon: pid {d['pid']}, {d['rules']['count']} rules "
                   f"(sha256 {d['rules']['hash'][:12]}), {events} events, {drops} drops, "
                   f"{len(daemon['scopes'])} sessions")
        if daemon["scopes"]:
            click.echo(f"  {'SESSION':<22} {'STATE':<8} {'EVENTS':>8} {'ALERTS':>6} {'ACTIONS':>7}  TOOL")
            for s in daemon["scopes"]:
                click.echo(f"  {s['name']:<22} {s['state']:<8} {sum(s['events'].values()):>8} "
                           f"{sum(s['alerts'].values()):>6} {s['actions']:>7}  {s.get('tool') or ''}"[:80])
    if not monitors:
        if daemon is None:
            click.echo("no standalone monitor is running")
        return
    click.echo(f"{'PID':>7} {'KIND':<8} {'STATE':<6} {'EVENTS':>9} {'DROPS':>6} {'KILLS':>5}  SCOPE")
    for m in monitors:
        state = "ok" if m["alive"] and m["age"] < 10 else ("stale" if m["alive"] else "DEAD")
        events = sum((m.get("events") or {}).values())
        drops = sum((m.get("drops") or {}).values())
        kills = sum((m.get("kills") or {}).values())
        scope = ", ".join(m.get("scope") or [])
        click.echo(f"{m['pid']:>7} {m.get('kind', '?'):<8} {state:<6} {events:>9} {drops:>6} {kills:>5}  {scope}"[:80])
