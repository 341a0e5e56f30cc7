"""Shared output helpers for the CLI: JSON lines, 80-column event tables, summaries."""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

import click
import orjson

from ..events import model

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line).")


class Seconds(click.ParamType):
    """A duration in seconds: a finite number above 0 (``--duration -5``, ``nan`` or ``inf``
    are usage errors, exit 2, not a watch that ends at once or never)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r} is not a number of seconds above 0", param, ctx)
        return seconds


SECONDS = Seconds()


def echo_json(obj: Any, file: IO[str] | None = None) -> None:
    click.echo(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode(), file=file)


class Clock:
    """Kernel CLOCK_MONOTONIC ns -> wall-clock text."""

    def __init__(self) -> None:
        self.offset_ns = time.time_ns() - time.monotonic_ns()

    def wall(self, ts_ns: int) -> str:
        t = (ts_ns + self.offset_ns) / 1e9
        return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def detail(ev: model.Event) -> str:
    """One short line saying what happened."""
    if isinstance(ev, model.ExecEvent):
        text = " ".join(ev.argv) or ev.filename
        if ev.argv and ev.argv[0] != ev.filename and not ev.filename.endswith("/" + ev.argv[0]):
            text = f"{ev.filename}: {text}"
        return (f"FAILED errno={ev.errno} " if ev.errno else "") + text
    if isinstance(ev, model.ForkEvent):
        return f"child {ev.child_pid}"
    if isinstance(ev, model.ExitEvent):
        return f"signal {ev.signal}" if ev.signal and ev.exit_code < 0 else f"code {ev.exit_code}"
    if isinstance(ev, model.ConnectEvent):
        dest = ev.daddr if ev.family == "unix" else f"{ev.daddr}:{ev.dport}"
        return f"{ev.family} {dest}" + (f" errno={ev.errno}" if ev.errno else "")
    if isinstance(ev, model.ConnectRepeatEvent):
        return f"{ev.count} more to {ev.daddr}:{ev.dport}" + (f" errno={ev.errno}" if ev.errno else "")
    if isinstance(ev, model.DupEvent):
        sock = f" socket {ev.daddr}:{ev.dport}" if ev.is_socket else ""
        return f"fd {ev.oldfd} -> {ev.newfd}{sock}"
    if isinstance(ev, model.NetSendEvent):
        return f"{ev.bytes} B in {ev.calls} calls to {ev.daddr}:{ev.dport}"
    if isinstance(ev, model.FileOpenEvent):
        return f"{ev.kind} {ev.path}" + (f" errno={ev.errno}" if ev.errno else "")
    if isinstance(ev, model.FileWriteEvent):
        return f"{ev.path} +{ev.opens} opens {ev.writes} writes {ev.bytes} B"
    if isinstance(ev, model.RenameEvent):
        return f"{ev.oldpath} -> {ev.newpath}"
    if isinstance(ev, model.UnlinkEvent):
        return ev.path
    if isinstance(ev, model.ChmodEvent):
        return f"{oct(ev.mode)} {ev.path or 'fd ' + str(ev.fd)}"
    if isinstance(ev, model.PrivEvent):
        return f"{ev.op} {ev.detail or ev.arg0}" + (f" errno={ev.errno}" if ev.errno else "")
    if isinstance(ev, model.UtimeEvent):
        return f"{ev.path or 'fd ' + str(ev.fd)} mtime={ev.mtime} atime={ev.atime}"
    return ""


TABLE_HEADER = f"{'TIME':<12} {'WHERE':<10} {'PID':>7} {'COMM':<10} {'EVENT':<10} DETAIL"


def table_row(ev: model.Event, clock: Clock, width: int = 80) -> str:
    row = (f"{clock.wall(ev.ts_ns):<12} {ev.container[:10]:<10} {ev.pid:>7} {ev.comm[:10]:<10} "
           f"{ev.type.label[:10]:<10} {detail(ev)}")
    return row[:width]


def alert_line(alert, clock: Clock) -> str:
    """An alert (the engine's, or its record) in the table: one line, then its process ancestry."""
    anc = " <- ".join(f"{a.name}({a.pid})" for a in alert.ancestry[:4])
    head = (f"{clock.wall(alert.ts_ns):<12} ALERT {alert.severity.label.upper()} {alert.rule} "
            f"[{alert.container}]: {alert.output}")
    proc = alert.process
    return head + (f"\n             process {proc.name}({proc.pid}) <- {anc}" if anc and proc is not None else "")


def action_line(record) -> str:
    """An action record in the table: one line."""
    status = "done" if record.ok else f"FAILED: {record.error}"
    if record.skipped:
        status = f"not needed: {record.skipped}"
    after = f" ({record.latency_ns / 1e6:.1f} ms after the event)" if record.latency_ns is not None else ""
    return (f"ACTION {record.action} for {record.rule or record.reason} on {record.container} "
            f"by {record.by}" + (f" pid {record.pid}" if record.pid is not None else "") + f": {status}{after}")


def print_summary(summary: dict, as_json: bool, file: IO[str] = sys.stderr) -> None:
    if as_json:
        echo_json({"record": "summary", **summary}, file=file)
        return
    events = summary.get("events", {})
    total = sum(events.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(events.items()))
    click.echo(f"coi-sentinel: {total} events in {summary.get('seconds', 0)} s ({parts or 'none'})", file=file)
    drops = summary.get("drops") or {}
    click.echo(f"coi-sentinel: dropped {sum(drops.values())} records" +
               (f" ({', '.join(f'{k} {v}' for k, v in drops.items())})" if drops else ""), file=file)
    alerts = summary.get("alerts")
    if alerts is not None:
        click.echo(f"coi-sentinel: {sum(alerts.values())} alerts from {summary.get('rules', '?')} rules"
                   + (f" ({', '.join(f'{k} {v}' for k, v in sorted(alerts.items()))})" if alerts else ""),
                   file=file)
    if summary.get("actions"):
        click.echo(f"coi-sentinel: actions: {summary['actions']}", file=file)
    for key in ("aggregation_maps_full", "decode_errors"):
        if summary.get(key):
            click.echo(f"coi-sentinel: {key.replace('_', ' ')}: {summary[key]}", file=file)
