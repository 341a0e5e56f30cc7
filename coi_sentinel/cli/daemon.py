"""``coi-sentinel daemon``: one sentinel per host."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ..daemon import protocol as P
from ..outputs.cli import alert_output_options


@click.command()
@click.option("--socket", "sock", metavar="PATH", default=None,
              help=f"Unix socket to listen on (default $COI_SENTINEL_SOCKET or {P.DEFAULT_SOCKET}).")
@click.option("--group", default=P.DEFAULT_GROUP, show_default=True,
              help="Group that may use the socket (mode 0660); '' for root only.")
@click.option("--rules", "rule_paths", multiple=True, metavar="PATH", type=click.Path(exists=True),
              help="Rule file or folder added to the bundled rules (repeatable).")
@click.option("--sigma", "sigma_paths", multiple=True, metavar="PATH", type=click.Path(exists=True),
              help="Sigma rules (file or folder) converted and added (repeatable).")
@click.option("--no-bundled", is_flag=True, help="Use only the --rules given.")
@click.option("--state-dir", default=None, metavar="DIR",
              help="Where the daemon keeps its pid, lock and registered scopes "
                   "(default: beside the socket, /run/coi-sentinel/sentinel.d).")
@click.option("--detach", is_flag=True, help="Start in the background and return once it answers.")
@alert_output_options()
def daemon(sock: str | None, group: str, rule_paths: tuple[str, ...], sigma_paths: tuple[str, ...],
           no_bundled: bool,
           state_dir: str, detach: bool, alerts_to: tuple[str, ...], outputs_config: str | None,
           fmt: str | None, metrics_addr: str | None) -> None:
    """Run the host's sentinel: load the probes once, hold the rules, the responder and every
    session's audit log, and serve the socket API (docs/daemon.md) that `run`, `watch`,
    `status`, `list` and `top` use. Foreground by default; SIGTERM or Ctrl-C stops it (the
    sessions it watched are frozen by their guardians until a new daemon re-adopts them);
    SIGHUP reloads the rules (lint first; the old set stays on any error).

    \b
    Examples:
      sudo coi-sentinel daemon                      # foreground, logs on stderr
      sudo coi-sentinel daemon --detach             # background, log in <socket>.log
      sudo coi-sentinel daemon --group developers --rules /etc/coi-sentinel/rules
      sudo coi-sentinel daemon --alerts-to 'syslog+tcp://127.0.0.1:601?min=high' --metrics 127.0.0.1:9464
      sudo kill -HUP $(cat /run/coi-sentinel/sentinel.d/daemon.pid)   # reload the rules
    """
    from ..daemon.server import DaemonOptions, serve

    path = P.socket_path(sock)
    if detach:
        from ..daemon.client import log_path, running, start_detached

        if running(path) is not None:
            raise P.DaemonError(f"a daemon already answers on {path}", code=P.STATE)
        extra = ["--group", group] + (["--state-dir", state_dir] if state_dir else [])
        for r in rule_paths:
            extra += ["--rules", str(Path(r).resolve())]
        for r in sigma_paths:
            extra += ["--sigma", str(Path(r).resolve())]
        if no_bundled:
            extra.append("--no-bundled")
        for url in alerts_to:
            extra += ["--alerts-to", url]
        if outputs_config:
            extra += ["--outputs-config", str(Path(outputs_config).resolve())]
        if metrics_addr:
            extra += ["--metrics", metrics_addr]
        pid = start_detached(path, extra)
        deadline = time.monotonic() + 180         # compiling takes seconds, minutes when loaded
        while time.monotonic() < deadline:
            hello = running(path)
            if hello is not None:
                click.echo(f"coi-sentinel daemon {hello['pid']} listening on {path}")
                return
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        raise P.DaemonError(f"the daemon did not start; see {log_path(path)}")
    opts = DaemonOptions(socket=str(path), group=group or None, rules=rule_paths, sigma=sigma_paths,
                         no_bundled=no_bundled, state_dir=state_dir, alerts_to=alerts_to,
                         outputs_config=outputs_config, metrics=metrics_addr)

    def ready(d) -> None:
        click.echo(f"coi-sentinel daemon {os.getpid()} listening on {path} "
                   f"({len(d.ruleset.rules)} rules, {len(d.scopes)} sessions re-adopted)", err=True)
        sys.stderr.flush()

    serve(opts, ready=ready)
