"""``coi-sentinel watch``: the host-wide (or scoped) watcher with the rules engine."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .. import records
from ..events import codec
from ..outputs.cli import AlertSinks, alert_output_options, print_outputs_status
from ..sentinel import Listener
from .output import SECONDS, TABLE_HEADER, Clock, action_line, alert_line, echo_json, json_option, print_summary, table_row


@click.command()
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="Watch only this Incus/LXC container (repeatable).")
@click.option("--cgroup", "cgroups", multiple=True, metavar="PATH",
              help="Watch only processes in this cgroup2 directory and below (repeatable).")
@json_option
@click.option("--duration", type=SECONDS, metavar="SECONDS",
              help="Stop after this many seconds.")
@click.option("--rules", "rule_paths", multiple=True, metavar="PATH", type=click.Path(exists=True),
              help="Rule file or folder added to the bundled rules (repeatable).")
@click.option("--no-bundled", is_flag=True, help="Use only the --rules given, not the bundled rules.")
@click.option("--sigma", "sigma_paths", multiple=True, metavar="DIR", type=click.Path(exists=True),
              help="Sigma rules (file or folder) converted and added; one that cannot be is skipped "
                   "with a warning (repeatable).")
@click.option("--alerts-only", is_flag=True, help="Print alerts (and actions) but not every event.")
@click.option("--output", "output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also append everything to this audit log (hash-chained JSONL, mode 0600).")
@click.option("--respond", is_flag=True,
              help="Kill the process tree of a process that matches a rule whose action is not "
                   "'alert' (never outside the watched scope).")
@click.option("--families", metavar="LIST", default=None,
              help="Probe families to load, comma-separated (default: all). See `doctor`.")
@click.option("--standalone", is_flag=True,
              help="Load probes of its own even when the host's daemon watches the --container.")
@alert_output_options()
def watch(containers: tuple[str, ...], cgroups: tuple[str, ...], as_json: bool,
          duration: float | None, rule_paths: tuple[str, ...], no_bundled: bool, sigma_paths: tuple[str, ...],
          alerts_only: bool,
          output: str | None, respond: bool, families: str | None, alerts_to: tuple[str, ...],
          outputs_config: str | None, fmt: str | None, metrics_addr: str | None,
          standalone: bool = False) -> None:
    """Watch what processes do and raise alerts from the threat rules: exec, fork/exit,
    connect, sockets on stdio, file writes, secret reads, renames, chmods, privileged syscalls,
    all seen in the kernel.

    Host-wide by default; --container and --cgroup limit it (filtered in the kernel). When the
    host's daemon already watches every --container given (and no option that needs probes of
    its own is used), it follows the daemon's stream of them instead. Prints
    events and alerts (JSON lines with --json: events have "type", alerts "type": "alert").
    Ctrl-C or SIGTERM detaches every probe and prints a summary with events by type, alerts
    and drops on stderr. An invalid rule file stops it before anything is loaded.

    \b
    Examples:
      sudo coi-sentinel watch
      sudo coi-sentinel watch --json --duration 5 > events.jsonl
      sudo coi-sentinel watch --alerts-only --container coi-1a2b3c4d-1
      sudo coi-sentinel watch --rules my-rules.yaml --output /var/log/coi.jsonl --respond
      sudo coi-sentinel watch --sigma sigma/rules/linux/ --alerts-only
      sudo coi-sentinel watch --format falco --alerts-to syslog+tcp://127.0.0.1:601?min=high
      sudo coi-sentinel watch --alerts-only --metrics 127.0.0.1:9464
    """
    from ..monitor import Monitor, MonitorOptions
    from ..records import MonitorRecord
    from ..rules import load_ruleset
    from ..sentinel import Lane, Sentinel
    from .watch_daemon import follow, watched_by_daemon

    own = cgroups or rule_paths or no_bundled or sigma_paths or output or respond or families or \
        alerts_to or outputs_config or fmt or metrics_addr
    if containers and not own and not standalone and watched_by_daemon(containers):
        follow(containers, as_json=as_json, alerts_only=alerts_only, duration=duration)
        return
    ruleset = load_ruleset([Path(p) for p in rule_paths] or None, replace_bundled=no_bundled,
                           sigma_paths=[Path(p) for p in sigma_paths])
    opts = MonitorOptions(
        containers=containers, cgroups=cgroups,
        families=tuple(f.strip() for f in families.split(",")) if families else None,
        sensitive_prefixes=tuple(ruleset.sensitive_prefixes()),
        sensitive_suffixes=tuple(ruleset.sensitive_suffixes()))
    stop = _stop_flag()
    sinks = AlertSinks.open(alerts_to, outputs_config, fmt, metrics_addr, as_json=as_json)
    alerts_only = alerts_only or sinks.falco          # Falco consumers read alerts only
    as_json = as_json or sinks.fmt == "json"
    with Monitor(opts) as mon:
        sinks.watch_monitor(mon)
        _report_coverage(mon, as_json)
        audit = _open_audit(output, mon) if output else None
        lane = None
        try:
            if not alerts_only and not as_json:
                click.echo(TABLE_HEADER)
            responder = _responder(mon) if respond else None
            sentinel = Sentinel(mon)
            terminal = Terminal(sinks, as_json=as_json, events=not alerts_only)
            mon.pipeline.add_batch_end(terminal.end_batch)
            lane = sentinel.add(Lane(mon.pipeline.table, ruleset=ruleset, responder=responder, log=audit,
                                     outputs=[sinks], timed=sinks.timed, listeners=[terminal]))
            try:
                sentinel.run(stop, duration=duration)
            finally:
                terminal.end_batch()
            sys.stdout.flush()
            summary = mon.summary()
            summary["rules"] = len(ruleset.rules)
            summary["alerts"] = dict(lane.engine.alerts)
            if responder is not None:
                summary["actions"] = dict(responder.taken)
                summary["kills_in_kernel"] = mon.probes.kill_counts()
            summary["outputs"] = lane.close(drops=summary["drops"],
                                            stop=MonitorRecord("stop", detail={"summary": summary}))
            lane = None
        finally:
            sinks.close()       # idempotent: after an error, outputs and metrics stop too
            if lane is not None and audit is not None:
                audit.close()
        print_summary(summary, as_json)
        print_outputs_status(summary["outputs"], as_json)


class Terminal(Listener):
    """What ``watch`` prints: events (a table, or JSON lines), alerts, actions."""

    def __init__(self, sinks: AlertSinks, *, as_json: bool, events: bool) -> None:
        self.sinks = sinks
        self.as_json = as_json
        self.clock = Clock()
        self.out = sys.stdout
        self.events = events
        #: --json on a real stdout: event lines written per batch of the pipeline (end_batch),
        #: an alert or action line at once after the events before it
        self.lines: codec.JsonLines | None = None
        if as_json and hasattr(self.out, "buffer"):
            self.out.flush()
            self.lines = codec.JsonLines(self.out.buffer)

    def event(self, event, process) -> None:
        if not self.events:
            return
        if self.lines is not None:
            self.lines(event)
        else:
            self.out.write((codec.dumps(event).decode() if self.as_json else table_row(event, self.clock)) + "\n")

    def _say(self, dest, line: str) -> None:
        if self.lines is not None and dest is self.out:
            self.lines.write_line(line.encode())
        else:
            dest.write(line + "\n")
            dest.flush()

    def alert(self, alert, record) -> None:
        sinks = self.sinks
        self._say(self.out, sinks.falco_line(alert) if sinks.falco else records.dumps(record).decode()
                  if self.as_json else alert_line(alert, self.clock))

    def action(self, record) -> None:
        dest = sys.stderr if self.sinks.falco else self.out      # stdout holds Falco alerts only
        self._say(dest, records.dumps(record).decode() if self.as_json else action_line(record))

    def end_batch(self) -> None:
        if self.lines is not None:
            self.lines.end_batch()


def _open_audit(path: str, mon):
    from ..audit import AuditLog
    from ..trace import make_header

    log = AuditLog(Path(path), make_header("watch", coverage=mon.coverage.to_dict(),
                                           scope=mon.scope_text()), events="all")
    return log


def _responder(mon):
    """``--respond``: only kill-process, only inside what is watched."""
    from ..respond.policy import Action, ActionPolicy
    from ..respond.responder import Responder, Target

    policy = ActionPolicy.from_config({"high": "kill-process", "critical": "kill-process"},
                                      allowed={Action.KILL_PROCESS})
    r = Responder(policy, mon.pipeline.table)
    for label, path in mon.scope_paths().items():
        r.add_target(Target(label, path))
    if not mon.scope_paths():
        r.default_target = Target("host", mon.names.mount)   # host-wide: the whole cgroup tree
    return r


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
