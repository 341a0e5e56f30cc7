"""``coi-sentinel run``: an agent in a monitored Incus container."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from ..sessions.config import NETWORK_MODES
from ..sessions.session import EXIT_KILLED, EXIT_STOPPED


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("-t", "--tool", help="Agent profile (shell, claude, opencode, codex, aider, ...).")
@click.option("-w", "--workspace", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to work in (default: the current one).")
@click.option("--slot", type=click.IntRange(1, 999), help="Session slot (default: the first free).")
@click.option("--persistent", is_flag=True, default=None,
              help="Keep the container when the session ends (default: ephemeral).")
@click.option("--preserve-path", is_flag=True,
              help="Mount the workspace at its host path instead of /workspace.")
@click.option("--image", help="Image alias (default: the tool's image, coi/TOOL, for a profile "
                               "with an image recipe; else coi/debian12).")
@click.option("--network", type=click.Choice(NETWORK_MODES),
              help="Network policy: none (no NIC), allowlist, restricted (default), open.")
@click.option("--resume", "resume", is_flag=False, flag_value="", default=None, metavar="[ID]",
              help="Restore the profile's saved state (the latest of this workspace, or ID).")
@click.option("-d", "--detach", is_flag=True, help="Start the agent in tmux but do not attach.")
@click.option("--alerts-to", "alerts_to", multiple=True, metavar="URL",
              help="Also send this session's alerts here (repeatable), besides the [[outputs]] of "
                   "your config.toml: syslog+tcp://HOST:PORT, http(s)://..., otlp+http://HOST:4318 "
                   "(options after '?'; docs/outputs.md). The daemon delivers them.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(tool: str | None, workspace: Path | None, slot: int | None,
        persistent: bool | None, preserve_path: bool, image: str | None, network: str | None,
        resume: str | None, detach: bool, alerts_to: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run an agent in a monitored Incus container that sees only the workspace.

    Without COMMAND the profile's agent starts in tmux and your terminal is attached (detach
    with C-b d; `coi-sentinel attach` comes back). With `-- COMMAND ARGS...` the command runs
    headless as the agent user in the workspace, its output is streamed, and `run` exits with
    its exit code.

    \b
    Exit codes: 0 ok; COMMAND's own code when headless (127: not found, 126: not executable,
    both said on stderr); 1 error (one line on stderr); 2 usage; 3 the monitor killed the
    agent (or a process of it); 4 the session was shut down (`coi-sentinel shutdown`, SIGTERM,
    or SIGHUP: a closed terminal) while COMMAND ran, state saved; 130 interrupted.

    \b
    Examples:
      sudo coi-sentinel run                           # a shell, attached
      sudo coi-sentinel run --tool claude --resume    # continue the last claude session
      sudo coi-sentinel run -- sh -c 'make test'      # headless
      sudo coi-sentinel run --slot 2 --persistent -d  # a second, kept session, detached
      sudo coi-sentinel run --network allowlist -- make deps   # network_allow_* in config
      coi-sentinel run -- make test     # in the daemon's group: no sudo (docs/daemon.md)
      coi-sentinel run --alerts-to 'syslog+tcp://127.0.0.1:601?min=high' -- make
    """
    from ..sessions import config as config_mod
    from ..sessions import profiles
    from ..sessions.session import SessionSpec, check_workspace

    ws = check_workspace(workspace if workspace is not None else Path.cwd())
    overrides = {"tool": tool, "image": image, "network": network, "persistent": persistent}
    cfg = config_mod.load(ws, overrides=overrides)
    if alerts_to:
        cfg = config_mod.with_outputs(cfg, alerts_to)
    profile = profiles.get(cfg.tool)
    cfg = config_mod.with_tool_image(cfg, profile)
    spec = SessionSpec(workspace=ws, config=cfg, profile=profile,
                       command=command or None, slot=slot, preserve_path=preserve_path,
                       resume=resume, interactive=not command)
    # sys.exit, not ctx.exit: the group's main() runs click with standalone_mode=False, which
    # turns ctx.exit(code) into a return value it does not pass on
    sys.exit(_headless(spec) if command else _interactive(spec, detach))


def _manager(spec):
    from ..supervision.monitor import default_factory
    from ..sessions.session import SessionManager

    # headless: this process owns the monitor, and shows each action as it is taken
    return SessionManager(monitor_factory=default_factory(
        spec.config, notify=lambda text: click.echo(text, err=True)))


def _headless(spec) -> int:
    from ..sessions.session import StopRequested, on_sigterm_stop

    on_sigterm_stop()
    try:
        session = _manager(spec).start(spec)
    except StopRequested as stop:   # SIGTERM/SIGHUP during start-up: start() undid its work
        _say(f"coi-sentinel: {_signal_name(stop)} during start-up: nothing left behind")
        return EXIT_STOPPED
    for text in session.notices:
        _say(f"coi-sentinel: {text}")
    try:
        code = session.run_headless(list(spec.command))
    except StopRequested as stop:
        session.finish()
        _say(f"coi-sentinel: {_signal_name(stop)}: session {session.name} ended, state saved")
        return EXIT_STOPPED
    except BaseException:
        session.abort()
        raise
    killed = bool(getattr(session.monitor, "killed", False))
    alerts = list(getattr(session.monitor, "alerts", []) or []) if session.monitor else []
    monitored = session.monitor is not None
    session.finish()
    if alerts:
        click.echo(f"coi-sentinel: {len(alerts)} alert(s) in {session.name}", err=True)
        for a in alerts:
            click.echo(f"  {a.severity.label:<8} {a.rule}: {a.output}", err=True)
    if monitored:
        _tell_report(session.name, {"tool": spec.config.tool, "network": spec.config.network,
                                    "workspace": str(spec.workspace)})
    return EXIT_KILLED if killed else code


def _signal_name(stop: BaseException) -> str:
    return str(stop.args[0]) if stop.args else "SIGTERM"


def _say(text: str) -> None:
    """One line on stderr, if stderr still leads somewhere (after SIGHUP it may not)."""
    try:
        click.echo(text, err=True)
    except OSError:
        pass


def _tell_report(name: str, facts: dict) -> None:
    """The session is over: write its report (a small log) or say how to make it."""
    from ..audit.files import log_files
    from ..errors import SentinelError
    from ..report import output
    from ..host.paths import audit_log

    try:
        files = log_files(audit_log(name))
        if files and output.log_size(files) <= output.EAGER_MAX_BYTES:
            path = output.session_report(files, name, facts=facts)
            click.echo(f"coi-sentinel: report: {path}", err=True)
            return
    except SentinelError as err:
        click.echo(f"coi-sentinel: the report was not written: {err}", err=True)
    click.echo(f"coi-sentinel: report: coi-sentinel report {name}", err=True)


def _interactive(spec, detach: bool) -> int:
    """Fork a keeper that owns the session (monitor, end of session); attach in the parent."""
    from ..sessions import keeper

    term = os.environ.get("TERM", "xterm-256color")
    cols, rows = shutil.get_terminal_size((80, 24))
    notices: list[str] = []
    name = keeper.spawn(spec, term=term, width=cols, height=rows, notices=notices)
    for text in notices:
        click.echo(f"coi-sentinel: {text}", err=True)
    if detach or not sys.stdin.isatty():
        click.echo(f"session {name} started; attach with `coi-sentinel attach {name}`")
        return 0
    code = keeper.attach(name, term)
    click.echo(f"coi-sentinel: report: coi-sentinel report {name}", err=True)
    return code
