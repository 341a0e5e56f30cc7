"""`replay`: exit codes, alerts located by trace and line, malformed traces (an error naming
file and line; --lenient skips and counts), one stream or --each, windows measured on the
traces' own timestamps, audit logs replayed unchanged."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import orjson
import pytest

from coi_sentinel.audit import AuditLog
from coi_sentinel.events import codec
from coi_sentinel.events.model import ConnectEvent, Event
from coi_sentinel.pipeline import Pipeline
from coi_sentinel.replay import replay
from coi_sentinel.replay.cases import bundled_cases_dir
from coi_sentinel.rules import Engine
from coi_sentinel.trace import TraceReader, TraceWriter, make_header, rewrite_header

pytestmark = pytest.mark.unit
TRACES = bundled_cases_dir() / "traces"
SHELL = "revshell_python_dup2"          # 2 x reverse_shell_socket_dup, 1 x ..._exec_socket_stdio


def plain_lines(name: str) -> list[bytes]:
    """A corpus trace's lines, decompressed, newlines kept."""
    with gzip.open(TRACES / f"{name}.jsonl.gz", "rb") as f:
        return f.read().splitlines(keepends=True)


def read_trace(name: str) -> tuple[dict, list[Event]]:
    with TraceReader(TRACES / f"{name}.jsonl.gz") as r:
        return r.header, list(r.iter_events())


def write_trace(path: Path, header: dict, events: list[Event]) -> Path:
    with TraceWriter(path, header, fsync=False, overwrite=True) as w:
        for ev in events:
            w.write_event(ev)
    return path


def key(alert) -> tuple:
    return alert.rule, alert.ts_ns, alert.event.pid


# ---- exit status and output -----------------------------------------------------------------

def test_exit_status_is_0_without_alerts_and_3_with_them(coi):
    quiet = coi("replay", TRACES / "benign_git.jsonl.gz")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert "0 alerts from" in quiet.stderr
    shell = TRACES / f"{SHELL}.jsonl.gz"
    loud = coi("replay", shell)
    assert loud.exit_code == 3
    assert loud.stdout.count("ALERT CRITICAL reverse_shell_socket_dup") == 2
    assert loud.stdout.count("ALERT CRITICAL reverse_shell_exec_socket_stdio") == 1
    assert f"at {shell}:" in loud.stdout
    assert "3 alerts from" in loud.stderr


def test_json_alerts_name_the_line_of_the_event_that_completed_them(coi):
    lines = plain_lines(SHELL)
    res = coi("replay", "--json", TRACES / f"{SHELL}.jsonl.gz")
    assert res.exit_code == 3
    alerts = [json.loads(line) for line in res.stdout.splitlines()]
    assert sorted(a["rule"] for a in alerts) == ["reverse_shell_exec_socket_stdio",
                                                 "reverse_shell_socket_dup", "reverse_shell_socket_dup"]
    for alert in alerts:
        assert alert["trace"] == str(TRACES / f"{SHELL}.jsonl.gz")
        # (read back through the codec: lines recorded before a field was added lack it)
        line_event = json.loads(codec.dumps(codec.from_dict(json.loads(lines[alert["line"] - 1]))))
        assert line_event == alert["events"][-1]
    summary = json.loads(res.stderr.splitlines()[-1])
    assert summary["record"] == "summary"
    assert summary["alerts"] == {"reverse_shell_exec_socket_stdio": 1, "reverse_shell_socket_dup": 2}


def test_usage_errors_and_unreadable_files(coi, tmp_path):
    assert coi("replay").exit_code == 2
    assert coi("replay", "--no-bundled", TRACES / f"{SHELL}.jsonl.gz").exit_code == 2
    missing = coi("replay", tmp_path / "nope.jsonl")
    assert missing.exit_code == 1
    assert f"{tmp_path / 'nope.jsonl'}: cannot open" in missing.stderr


def test_session_network_mode_is_given_to_the_rules(coi):
    trace = TRACES / "net_private.jsonl.gz"
    assert coi("replay", trace).exit_code == 0
    res = coi("replay", "--session-network", "restricted", trace)
    assert res.exit_code == 3 and "private_network_connect_restricted" in res.stdout


def test_lost_events_are_reported(coi, tmp_path):
    path = tmp_path / "lossy.jsonl"
    path.write_bytes(b"".join(plain_lines(SHELL)))
    rewrite_header(path, drops={"exec": 2, "dup": 1})
    res = coi("replay", path)
    assert res.exit_code == 3
    assert f"{path}: 3 events were lost when it was recorded; alerts may be missing" in res.stderr


# ---- malformed traces -------------------------------------------------------------------------

def _truncated(lines: list[bytes]) -> tuple[list[bytes], int]:
    body = lines[:-1]                          # no footer: the writer died
    body[-1] = body[-1][: len(body[-1]) // 2]  # ... in the middle of its last line
    return body, len(body)


def _not_json(lines: list[bytes]) -> tuple[list[bytes], int]:
    at = len(lines) - 1                        # before the footer, after every alert
    return lines[:at] + [b"{this is not json\n"] + lines[at:], at + 1


def _unknown_type(lines: list[bytes]) -> tuple[list[bytes], int]:
    at = len(lines) - 2                        # the last event
    d = orjson.loads(lines[at])
    d["type"] = "teleport"
    return lines[:at] + [orjson.dumps(d) + b"\n"] + lines[at + 1:], at + 1


MALFORMED = {
    "truncated": (_truncated, "truncated: the last line is incomplete"),
    "json": (_not_json, "not JSON"),
    "event": (_unknown_type, "unknown event type 'teleport'"),
}


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_a_bad_line_is_an_error_naming_file_and_line(coi, tmp_path, reason):
    mutate, text = MALFORMED[reason]
    lines, lineno = mutate(plain_lines(SHELL))
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    res = coi("replay", path)
    assert res.exit_code == 1
    assert f"coi-sentinel: error: {path}:{lineno}: {text}" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_lenient_skips_and_counts_bad_lines(coi, tmp_path, reason):
    mutate, text = MALFORMED[reason]
    lines, lineno = mutate(plain_lines(SHELL))
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    res = coi("replay", "--lenient", path)
    assert res.exit_code == 3                  # the alerts before the bad line still fire
    assert f"coi-sentinel: skipped {path}:{lineno}: {text}" in res.stderr
    assert f"skipped 1 bad lines ({reason} 1)" in res.stderr
    as_json = coi("replay", "--lenient", "--json", path)
    assert json.loads(as_json.stderr.splitlines()[-1])["skipped"] == {reason: 1}


def test_a_wrong_schema_is_fatal_even_when_lenient(coi, tmp_path):
    lines = plain_lines(SHELL)
    header = orjson.loads(lines[0])
    header["schema"] = 99
    path = tmp_path / "future.jsonl"
    path.write_bytes(orjson.dumps(header) + b"\n" + b"".join(lines[1:]))
    for args in ((), ("--lenient",)):
        res = coi("replay", *args, path)
        assert res.exit_code == 1
        assert f"{path}:1: trace schema 99 is not supported" in res.stderr
        assert res.stdout == ""


def test_a_gzip_trace_cut_short_is_truncated(coi, tmp_path):
    data = (TRACES / "benign_pytest.jsonl.gz").read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    res = coi("replay", path)
    assert res.exit_code == 1 and "truncated: the gzip stream ends early" in res.stderr
    lenient = coi("replay", "--lenient", path)
    assert lenient.exit_code == 0 and "(truncated 1)" in lenient.stderr


# ---- semantics ----------------------------------------------------------------------------------

def _split_at_connect(tmp_path: Path, name: str) -> tuple[Path, Path]:
    header, events = read_trace(name)
    cut = next(i for i, ev in enumerate(events) if isinstance(ev, ConnectEvent))
    return (write_trace(tmp_path / "a.jsonl", header, events[:cut]),
            write_trace(tmp_path / "b.jsonl", header, events[cut:]))


def test_traces_are_one_stream_unless_each(ruleset, tmp_path, coi):
    first, second = _split_at_connect(tmp_path, "exfil_aws_curl")
    stream = replay([first, second], ruleset)
    assert dict(stream.by_rule) == {"cloud_credential_read": 1, "exfil_secret_read_then_connect": 1}
    assert [(h.trace, h.alert.rule) for h in stream.alerts][-1] == (str(second),
                                                                    "exfil_secret_read_then_connect")
    each = replay([first, second], ruleset, each=True)
    assert dict(each.by_rule) == {"cloud_credential_read": 1}
    assert coi("replay", "--each", "--json", first, second).stdout.count('"rule"') == 1


@pytest.mark.parametrize("shift_s, fires", [(0, True), (58, True), (61, False)])
def test_sequence_windows_are_measured_on_the_trace_timestamps(ruleset, tmp_path, shift_s, fires):
    """exfil_secret_read_then_connect has a 60 s window: move the connect (and what follows)
    later in the trace and the sequence holds or not, whatever the wall clock does."""
    header, events = read_trace("exfil_aws_curl")
    cut = next(i for i, ev in enumerate(events) if isinstance(ev, ConnectEvent))
    shift = shift_s * 1_000_000_000
    moved = events[:cut] + [dataclasses.replace(ev, ts_ns=ev.ts_ns + shift) for ev in events[cut:]]
    path = write_trace(tmp_path / "moved.jsonl", header, moved)
    rules = replay([path], ruleset).by_rule
    assert ("exfil_secret_read_then_connect" in rules) is fires
    assert rules["cloud_credential_read"] == 1


@pytest.mark.parametrize("mode", ["all", "context"])
def test_audit_logs_replay_as_traces(ruleset, tmp_path, mode):
    """A session's audit log (hash chain, alert records, context blocks) replays unchanged and
    raises what the engine raised while the log was written."""
    _header, events = read_trace(SHELL)
    path = tmp_path / "audit" / "agent.jsonl"
    log = AuditLog(path, make_header("run", session="corpus"), events=mode)
    pipeline = Pipeline()
    live: list = []

    def on_alert(alert) -> None:
        live.append(alert)
        log.write_alert(alert.to_dict(), scope_id=alert.event.scope_id)

    pipeline.add_sink(log)
    Engine(ruleset, on_alert=on_alert).attach(pipeline)
    for ev in events:
        pipeline.feed(ev)
    log.close()
    replayed = replay(log.files(), ruleset).alerts
    if mode == "all":
        assert sorted(map(key, live)) == sorted(key(h.alert) for h in replayed)
    else:   # only the context of each alert is in the file: the same rules fire again
        assert {a.rule for a in live} == {h.alert.rule for h in replayed}
    assert all(h.trace == str(path) for h in replayed)


def test_replay_of_a_copy_is_the_same_as_of_the_original(ruleset, tmp_path):
    """Compression and file names do not matter (gzip is detected by content)."""
    plain = tmp_path / "shell.log"
    plain.write_bytes(b"".join(plain_lines(SHELL)))
    renamed = tmp_path / "shell.txt"
    shutil.copy2(TRACES / f"{SHELL}.jsonl.gz", renamed)
    original = replay([TRACES / f"{SHELL}.jsonl.gz"], ruleset).alerts
    for path in (plain, renamed):
        again = replay([path], ruleset).alerts
        assert [key(h.alert) for h in again] == [key(h.alert) for h in original]
        assert [codec.to_dict(h.alert.event) for h in again] == [codec.to_dict(h.alert.event)
                                                                 for h in original]
