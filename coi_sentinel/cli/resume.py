"""``coi-sentinel resume-session NAME`` (alias ``unfreeze``): thaw a paused session."""

from __future__ import annotations

import click


@click.command("resume-session")
@click.argument("names", nargs=-1, required=True)
def resume_session(names: tuple[str, ...]) -> None:
    """Thaw sessions that their monitor paused (FROZEN in `list`).

    A session stays paused until this command or until it is killed. Its monitor must still
    be alive: a session that the guardian paused because its monitor died stays paused (its
    agent would run unwatched); kill it, or shut it down to keep its state. The monitor records
    the resume in the audit log, and the same rule firing again pauses the session again.

    \b
    Examples:
      sudo coi-sentinel resume-session coi-1a2b3c4d-1
      sudo coi-sentinel unfreeze coi-1a2b3c4d-1
      sudo coi-sentinel list --json | jq '.[] | select(.state == "Frozen") | .paused'
    """
    from ..host import incus
    from ..supervision import paused

    client = incus.connect()
    for name in names:
        click.echo(paused.resume(client, name))
