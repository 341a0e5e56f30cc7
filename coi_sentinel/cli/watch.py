"""``coi-sentinel watch``: the host-wide (or scoped) watcher."""

from __future__ import annotations

import signal
import sys

import click

from ..events import codec
from .output import TABLE_HEADER, Clock, echo_json, json_option, print_summary, table_row


@click.command()
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="Watch only this Incus/LXC container (repeatable).")
@click.option("--cgroup", "cgroups", multiple=True, metavar="PATH",
              help="Watch only processes in this cgroup2 directory and below (repeatable).")
@json_option
@click.option("--duration", type=float, metavar="SECONDS", help="Stop after this many seconds.")
@click.option("--families", metavar="LIST", default=None,
              help="Probe families to load, comma-separated (default: all). See `doctor`.")
def watch(containers: tuple[str, ...], cgroups: tuple[str, ...], as_json: bool,
          duration: float | None, families: str | None) -> None:
    """Watch what processes do: exec, fork/exit, connect, dup onto stdio, file writes,
    sensitive reads, renames, chmods and privileged syscalls, seen in the kernel.

    Host-wide by default; --container and --cgroup limit it (filtered in the kernel). Ctrl-C or
    SIGTERM stops it and prints a summary with events by type and drops to stderr.

    \b
    Examples:
      sudo coi-sentinel watch
      sudo coi-sentinel watch --json --duration 5 > events.jsonl
      sudo coi-sentinel watch --container coi-1a2b3c4d-1
      sudo coi-sentinel watch --cgroup /sys/fs/cgroup/unified/my.slice
    """
    from ..monitor import Monitor, MonitorOptions

    opts = MonitorOptions(
        containers=containers, cgroups=cgroups,
        families=tuple(f.strip() for f in families.split(",")) if families else None)
    clock = Clock()
    out = sys.stdout
    if as_json:
        def show(ev, _proc) -> None:
            out.write(codec.dumps(ev).decode() + "\n")
    else:
        def show(ev, _proc) -> None:
            out.write(table_row(ev, clock) + "\n")

    stop = _stop_flag()
    with Monitor(opts) as mon:
        _report_coverage(mon, as_json)
        if not as_json:
            click.echo(TABLE_HEADER)
        mon.pipeline.add_sink(show)
        mon.run(stop, duration=duration)
        out.flush()
        print_summary(mon.summary(), as_json)


def _stop_flag():
    """SIGINT/SIGTERM set a flag the loop checks, so the probes are detached cleanly."""
    state = {"stop": False}

    def handler(_sig, _frame) -> None:
        state["stop"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return lambda: state["stop"]


def _report_coverage(mon, as_json: bool) -> None:
    cov = mon.coverage
    if as_json:
        echo_json({"record": "coverage", **cov.to_dict()}, file=sys.stderr)
        return
    click.echo(f"coi-sentinel: {len(cov.attached)} hooks attached, {len(cov.missing)} not covered"
               f" ({mon.scope_text()})", err=True)
    for hook, why in cov.missing:
        click.echo(f"coi-sentinel:   not covered: {hook.tracepoint} ({why})", err=True)
