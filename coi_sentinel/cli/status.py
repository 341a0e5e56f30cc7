"""``coi-sentinel status``: the monitors running on this host, with their drops."""

from __future__ import annotations

import click

from .output import echo_json, json_option


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Show every coi-sentinel monitor on this host (watch, record, sessions): what it watches,
    events seen, records dropped and processes killed in the kernel. A monitor whose process
    is gone without cleaning up is shown as DEAD.

    \b
    Examples:
      sudo coi-sentinel status
      sudo coi-sentinel status --json
    """
    from ..status import read_all

    monitors = read_all()
    if as_json:
        echo_json({"monitors": monitors})
        return
    if not monitors:
        click.echo("no coi-sentinel monitor is running")
        return
    click.echo(f"{'PID':>7} {'KIND':<8} {'STATE':<6} {'EVENTS':>9} {'DROPS':>6} {'KILLS':>5}  SCOPE")
    for m in monitors:
        state = "ok" if m["alive"] and m["age"] < 10 else ("stale" if m["alive"] else "DEAD")
        events = sum((m.get("events") or {}).values())
        drops = sum((m.get("drops") or {}).values())
        kills = sum((m.get("kills") or {}).values())
        scope = ", ".join(m.get("scope") or [])
        click.echo(f"{m['pid']:>7} {m.get('kind', '?'):<8} {state:<6} {events:>9} {drops:>6} {kills:>5}  {scope}"[:80])
