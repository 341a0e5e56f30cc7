"""``watch --container NAME`` when the host's daemon already watches NAME: follow its stream
instead of loading a second set of probes."""

from __future__ import annotations

import signal
import sys
import threading
import time

import click

from .. import records
from ..daemon import protocol as P
from ..errors import RecordError
from .output import TABLE_HEADER, Clock, action_line, alert_line, echo_json, table_row


def watched_by_daemon(containers: tuple[str, ...]) -> bool:
    """True when a daemon answers and watches every one of ``containers``."""
    from ..daemon.client import DaemonClient

    try:
        with DaemonClient.connect(timeout=3) as c:
            names = {s["name"] for s in c.request("status")["scopes"]}
    except P.DaemonError:
        return False
    return bool(containers) and set(containers) <= names


def follow(containers: tuple[str, ...], *, as_json: bool, alerts_only: bool,
           duration: float | None) -> None:
    """Print the daemon's events, alerts and actions of ``containers`` until Ctrl-C, SIGTERM,
    ``duration`` or the daemon goes away; a summary on stderr at the end."""
    from ..daemon.client import DaemonClient
    from ..events import codec

    client = DaemonClient.connect()
    what = ("alerts", "actions") if alerts_only else ("events", "alerts", "actions")
    items = client.subscribe(list(containers), what)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (stop.set(), client.sock.shutdown(2)))
    if duration is not None:
        timer = threading.Timer(duration, lambda: (stop.set(), client.sock.shutdown(2)))
        timer.daemon = True
        timer.start()
    click.echo(f"coi-sentinel: following the daemon's stream of {', '.join(containers)}", err=True)
    clock = Clock()
    counts: dict[str, int] = {}
    out = sys.stdout
    if not as_json and not alerts_only:
        click.echo(TABLE_HEADER)
    t0 = time.monotonic()
    try:
        for item in items:
            kind, data = item["stream"], item["data"]
            counts[kind] = counts.get(kind, 0) + 1
            if as_json:
                out.write(codec.orjson.dumps(data).decode() + "\n")
            elif kind == "event":
                out.write(table_row(codec.from_dict(data), clock) + "\n")
            else:       # an alert or an action: a record, read with the one codec
                rec = records.from_dict(data)
                out.write((alert_line(rec, clock) if kind == "alert" else action_line(rec)) + "\n")
            out.flush()
    except (OSError, ValueError, RecordError):
        pass
    finally:
        client.close()
    summary = {"followed": list(containers), "seconds": round(time.monotonic() - t0, 3), "items": counts}
    if not stop.is_set():
        summary["ended"] = "the daemon closed the stream"
    if as_json:
        echo_json({"record": "summary", **summary}, file=sys.stderr)
    else:
        click.echo(f"coi-sentinel: {sum(counts.values())} items from the daemon "
                   f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'})", err=True)
