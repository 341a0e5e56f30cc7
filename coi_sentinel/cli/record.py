"""``coi-sentinel record``: capture a trace for rule authors."""

from __future__ import annotations

import click

from .output import SECONDS, echo_json, json_option
from .watch import _stop_flag


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("-o", "--output", required=True, metavar="TRACE",
              help="Trace file to write (NDJSON; gzip when it ends in .gz).")
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="Without a command: record this container (repeatable).")
@click.option("--cgroup", "cgroups", multiple=True, metavar="PATH",
              help="Without a command: record this cgroup2 directory (repeatable).")
@click.option("--duration", type=SECONDS, metavar="SECONDS",
              help="Without a command: stop after this many seconds (else Ctrl-C).")
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def record(output: str, containers: tuple[str, ...], cgroups: tuple[str, ...],
           duration: float | None, as_json: bool, command: tuple[str, ...]) -> None:
    """Record what a command does into a trace (root).

    With a command, it runs in a cgroup made for it and exactly its events are recorded (all
    its descendants, nothing else on the host) until it and every descendant have exited.
    Without one, --container / --cgroup / the whole host is recorded for --duration seconds.
    Prints the events captured and the drops; a trace with drops says so in its header.
    The sensitive-path set of the bundled rules is loaded so secret reads are captured.

    \b
    Examples:
      sudo coi-sentinel record -o build.jsonl -- make -j2
      sudo coi-sentinel record -o shell.jsonl.gz -- bash -c 'cat ~/.ssh/id_rsa'
      sudo coi-sentinel record -o agent.jsonl --container my-agent --duration 60
    """
    from ..monitor import MonitorOptions
    from ..record import record as do_record
    from ..rules import load_ruleset

    if not command and duration is None and not (containers or cgroups):
        raise click.UsageError("give a command after --, or --container/--cgroup/--duration")
    ruleset = load_ruleset(None)
    sensitive = (tuple(ruleset.sensitive_prefixes()), tuple(ruleset.sensitive_suffixes()))
    opts = MonitorOptions(containers=containers, cgroups=cgroups)
    res = do_record(output, list(command) or None, options=opts, duration=duration,
                    should_stop=_stop_flag(), sensitive=sensitive)
    summary = {"record": "recorded", "trace": res.path, "events": res.events, "drops": res.drops,
               "exit_code": res.exit_code, "seconds": round(res.seconds, 3)}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"coi-sentinel: {res.events} events, {sum(res.drops.values())} dropped, "
                   f"written to {res.path}" + (f" (command exit code {res.exit_code})"
                                               if res.exit_code is not None else ""), err=True)
