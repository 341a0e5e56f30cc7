"""``coi-sentinel net``: the live network policy of sessions (table ``inet coi_sentinel``),
and run-time blocks."""

from __future__ import annotations

import click

from .output import echo_json, json_option


def _firewall():
    from ..network import Firewall

    return Firewall()


@click.group()
def net() -> None:
    """Show the per-session network policy that is in the kernel now (nftables table
    `inet coi_sentinel`; docs/network.md), and block or unblock destinations of a running
    session. `run` applies the policy; the session's end removes it. Needs root.

    \b
    Examples:
      sudo coi-sentinel net list
      sudo coi-sentinel net show coi-1a2b3c4d-1
      sudo coi-sentinel net show coi-1a2b3c4d-1 --json
      sudo coi-sentinel net block coi-1a2b3c4d-1 203.0.113.9 --port 4444
    """


@net.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the sessions that have a policy in the table: mode and host-side interface.

    \b
    Examples:
      sudo coi-sentinel net list
      sudo coi-sentinel net list --json
    """
    rows = _firewall().sessions()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no session has a network policy")
        return
    click.echo(f"{'SESSION':<32} {'MODE':<11} INTERFACE")
    for r in rows:
        click.echo(f"{r['session'][:32]:<32} {r['mode']:<11} {r['interface'] or '-'}")


@net.command("show")
@click.argument("name")
@json_option
def show_cmd(name: str, as_json: bool) -> None:
    """Print a session's live policy: mode, interface, rules with their verdicts, the
    contents of its sets (run-time blocks, allowed addresses, ...) and its counters.

    Counters count packets stopped (or passed) by each part of the policy; `pending` counts
    packets dropped before the policy was applied.

    \b
    Examples:
      sudo coi-sentinel net show coi-1a2b3c4d-1
      sudo coi-sentinel net show coi-1a2b3c4d-1 --json | jq .counters
    """
    view = _firewall().show(name)
    if as_json:
        echo_json(view)
        return
    present = "present" if view["interface_present"] else "absent"
    lines = [f"session    {view['session']}",
             f"mode       {view['mode']}",
             f"interface  {view['interface'] or '-'} ({present})",
             f"table      {view['table']}, objects {view['key']}.*",
             "rules:"]
    for r in view["rules"]:
        lines.append(f"  {r['chain'].rsplit('.', 1)[-1]:<7} {r['verdict'] or '-':<7} {r['comment']}")
    lines.append(f"{'COUNTER':<12} {'PACKETS':>10} {'BYTES':>12}")
    for cat, c in view["counters"].items():
        lines.append(f"{cat:<12} {c['packets']:>10} {c['bytes']:>12}")
    filled = {k: v for k, v in view["sets"].items() if v}
    if filled:
        lines.append("sets:")
        for set_name, elems in filled.items():
            for e in elems:
                expires = f" (expires in {e['expires']} s)" if e["expires"] is not None else ""
                lines.append(f"  {set_name:<10} {e['value']}{expires}")
    for line in lines:
        click.echo(line[:80])


@net.command("block")
@click.argument("name")
@click.argument("address")
@click.option("--port", type=click.IntRange(1, 65535),
              help="Only this destination port (TCP and UDP).")
@click.option("--timeout", type=click.IntRange(1, None), metavar="SECONDS",
              help="Lift the block after this long (default: until the session ends).")
def block_cmd(name: str, address: str, port: int | None, timeout: int | None) -> None:
    """Drop everything session NAME sends to ADDRESS (IPv4 or IPv6), or only to --port,
    whatever its mode. This is what the response engine's `block` action does; the
    `blocked` counter of `net show` counts the packets stopped.

    \b
    Examples:
      sudo coi-sentinel net block coi-1a2b3c4d-1 203.0.113.9
      sudo coi-sentinel net block coi-1a2b3c4d-1 2001:db8::9 --port 4444 --timeout 3600
    """
    _firewall().block(name, address, port, timeout=timeout)
    what = f"{address} port {port}" if port else address
    click.echo(f"{name}: {what} blocked" + (f" for {timeout} s" if timeout else ""))


@net.command("unblock")
@click.argument("name")
@click.argument("address")
@click.option("--port", type=click.IntRange(1, 65535), help="The port given to `net block`.")
def unblock_cmd(name: str, address: str, port: int | None) -> None:
    """Lift a block made by `net block` (or the response engine). Exit code 1 if ADDRESS
    (with --port, if given) was not blocked for NAME.

    \b
    Examples:
      sudo coi-sentinel net unblock coi-1a2b3c4d-1 203.0.113.9
      sudo coi-sentinel net unblock coi-1a2b3c4d-1 2001:db8::9 --port 4444
    """
    what = f"{address} port {port}" if port else address
    if not _firewall().unblock(name, address, port):
        raise click.ClickException(f"{name}: {what} was not blocked")
    click.echo(f"{name}: {what} unblocked")
