"""``coi-sentinel list | attach | kill | shutdown | clean``: sessions after they started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click


def _manager():
    from ..sessions.session import SessionManager

    return SessionManager()


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else \
        f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of sessions.")
def list_(as_json: bool) -> None:
    """List sessions: name, tool, state, uptime, alerts, workspace.

    An orphan is a running session whose `run` process is gone (see `clean --orphans`).
    Alerts and the watch state come from the host's daemon when one answers (--json: "daemon",
    its status of the session, null when no daemon answers); UNWATCHD is a running session no
    daemon watches.
    FROZEN is a session paused by its monitor or guardian (the cgroup2 freezer, which Incus does
    not see); --json says why ("paused"). `resume-session NAME` thaws it.

    \b
    Examples:
      sudo coi-sentinel list
      sudo coi-sentinel list --json | jq -r '.[].name'
    """
    sessions = _manager().sessions()
    watched = _daemon_scopes()
    if as_json:
        click.echo(json.dumps([{**s.to_dict(), "daemon": None if watched is None else watched.get(s.name)}
                               for s in sessions], indent=2))
        return
    if not sessions:
        click.echo("no sessions")
        return
    click.echo(f"{'NAME':<17} {'TOOL':<8} {'STATE':<8} {'UPTIME':>7} {'ALERTS':>6}  WORKSPACE")
    for s in sessions:
        d = s.to_dict()
        state = "FROZEN" if s.status == "Frozen" else "ORPHAN" if s.orphan else s.status.upper()
        scope = (watched or {}).get(s.name)
        if s.status == "Running" and watched is not None and scope is None:
            state = "UNWATCHD"          # no daemon watches it (a session run with monitoring off)
        alerts = sum(scope["alerts"].values()) if scope is not None else s.alerts
        ws = s.workspace if len(s.workspace) <= 27 else "..." + s.workspace[-24:]
        click.echo(f"{s.name:<17} {s.tool[:8]:<8} {state[:8]:<8} {_uptime(d['uptime']):>7} "
                   f"{alerts:>6}  {ws}")


def _daemon_scopes() -> dict[str, dict] | None:
    """The daemon's view of its sessions (name -> its status entry), None when none answers."""
    from ..daemon import protocol as P
    from ..daemon.client import DaemonClient

    try:
        with DaemonClient.connect(timeout=3) as c:
            return {sc["name"]: sc for sc in c.request("status")["scopes"]}
    except P.DaemonError:
        return None


def _default_names(names: tuple[str, ...], all_: bool, running_only: bool = True) -> list[str]:
    """NAMEs given, or every session (--all), or the sessions of the current workspace."""
    if names:
        return list(names)
    sessions = _manager().sessions()
    if all_:
        return [s.name for s in sessions]
    cwd = os.path.realpath(Path.cwd())
    mine = [s.name for s in sessions if s.workspace == cwd
            and (not running_only or s.status in ("Running", "Frozen"))]
    if not mine:
        raise click.UsageError("no session of this workspace; name one (see `coi-sentinel list`)")
    return mine


@click.command()
@click.argument("name", required=False)
def attach(name: str | None) -> None:
    """Attach this terminal to a session's tmux (detach again with C-b d).

    Without NAME: the one running session of the current workspace.

    \b
    Examples:
      sudo coi-sentinel attach
      sudo coi-sentinel attach coi-1a2b3c4d-2
    """
    from ..sessions import keeper

    names = _default_names((name,) if name else (), False)
    if len(names) > 1:
        raise click.UsageError(f"this workspace has {len(names)} sessions; name one: {', '.join(names)}")
    keeper.attach(names[0], os.environ.get("TERM", "xterm-256color"))


@click.command()
@click.argument("names", nargs=-1, required=True)
def kill(names: tuple[str, ...]) -> None:
    """Stop and delete sessions at once, without saving their state.

    \b
    Examples:
      sudo coi-sentinel kill coi-1a2b3c4d-1
    """
    mgr = _manager()
    for name in names:
        mgr.kill(name)
        click.echo(f"{name} killed")


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every session, not only this workspace's.")
@click.option("--timeout", type=float, default=20.0, show_default=True,
              help="Seconds to wait for each session to end.")
def shutdown(names: tuple[str, ...], all_: bool, timeout: float) -> None:
    """End sessions normally: state saved for --resume, monitor stopped, container stopped
    (and deleted unless persistent).

    Without NAMEs: the running sessions of the current workspace.

    \b
    Examples:
      sudo coi-sentinel shutdown                  # this workspace's sessions
      sudo coi-sentinel shutdown coi-1a2b3c4d-2
      sudo coi-sentinel shutdown --all
    """
    mgr = _manager()
    for name in _default_names(names, all_):
        click.echo(mgr.shutdown(name, timeout=timeout))


@click.command()
@click.option("--orphans", is_flag=True,
              help="Also remove running sessions whose `run` process is gone.")
@click.option("-w", "--workspace", type=click.Path(exists=True, file_okay=False),
              help="Only the sessions of this workspace.")
def clean(orphans: bool, workspace: str | None) -> None:
    """Delete stopped sessions, and with --orphans what crashed runs left behind.

    An orphan is a running session whose `run` (or keeper) process died, e.g. by SIGKILL. Its
    entries in the kernel filter went with that process (the BPF maps are not pinned); its
    network policy is removed here, with the policies whose container is already gone.

    \b
    Examples:
      sudo coi-sentinel clean
      sudo coi-sentinel clean --orphans
      sudo coi-sentinel clean --orphans -w ~/src/project
    """
    ws = os.path.realpath(workspace) if workspace else None
    removed = _manager().clean(orphans=orphans, workspace=ws)
    for line in removed:
        click.echo(f"removed {line}")
    if not removed:
        click.echo("nothing to clean")
