"""Outputs delivering to real receivers on loopback: a webhook that fails first, an OTLP/HTTP
receiver decoding with opentelemetry-proto, a rotated file; and what is counted when an
output cannot keep up."""

from __future__ import annotations

import time

import orjson
import pytest
from output_support import OtlpReceiver, WebhookReceiver

from coi_sentinel.errors import ConfigError
from coi_sentinel.outputs import OutputSet, parse_url
from coi_sentinel.outputs.cli import AlertSinks

pytestmark = pytest.mark.unit


def test_webhook_retries_until_every_alert_is_delivered(make_alerts) -> None:
    alerts = make_alerts(40)
    with WebhookReceiver(fail_first=4) as recv:
        url = f"{recv.url}?batch=8&retries=6&backoff=0.01&header=Authorization:Bearer%20t0k&format=falco"
        outs = OutputSet.from_options([url])
        for a in alerts:
            outs.emit(a)
        assert outs.wait_idle(10)
        outs.close()
        got = recv.alerts()
        st = outs.status()[outs.outputs[0].name]
    assert recv.posts >= 4 + 5                       # 4 refused, then 40 alerts in batches of <= 8
    assert sorted(g["output_fields"]["proc.pid"] for g in got) == list(range(100, 140))
    assert (st["delivered"], st["lost"], st["queued"]) == (40, 0, 0) and st["retries"] >= 1
    assert all(h["Authorization"] == "Bearer t0k" for h in recv.headers)
    assert all(set(g) == {"time", "rule", "priority", "source", "hostname", "output", "tags",
                          "output_fields"} for g in got)


def _until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_webhook_emit_never_waits_for_the_receiver(make_alerts) -> None:
    """The receiver holds every request until released: all emits return meanwhile (the event
    loop is not held), the queue takes what fits, the rest is counted lost, not waited for."""
    alerts = make_alerts(30)
    with WebhookReceiver(hold=True) as recv:
        outs = OutputSet.from_options([f"{recv.url}?queue=10"])
        name = outs.outputs[0].name
        outs.emit(alerts[0])
        assert _until(lambda: outs.status()[name]["busy"])      # its thread waits on the receiver
        for a in alerts[1:]:
            outs.emit(a)                             # would hang here if emit waited
        outs.flush()                                 # the event loop's end of batch
        assert _until(lambda: outs.status()[name]["lost"] == 19)
        before = outs.status()[name]
        recv.release()
        assert outs.wait_idle(10)
        outs.close()
        after = outs.status()[name]
    # one alert in flight (held by the receiver), ten wait in the queue (11 not yet delivered), 19 lost
    assert before["lost_by_reason"] == {"queue_full": 19} and before["queued"] == 11
    assert after["delivered"] == 11 and after["lost"] == 19
    assert outs.take_losses() == {name: {"queue_full": 19}} and outs.take_losses() == {}


def test_in_process_outputs_work_the_same(make_alerts) -> None:
    with WebhookReceiver(fail_first=2) as recv:
        outs = OutputSet.from_options([f"{recv.url}?backoff=0.01"], process=False)
        for a in make_alerts(5):
            outs.emit(a)
        assert outs.wait_idle(10)
        outs.close()
    st = outs.status()[outs.outputs[0].name]
    assert (st["delivered"], st["lost"], len(recv.alerts())) == (5, 0, 5)


def test_a_dead_delivery_process_is_counted_not_waited_for(make_alerts) -> None:
    with WebhookReceiver() as recv:
        outs = OutputSet.from_options([f"{recv.url}?name=h"])
        alerts = make_alerts(4)
        outs.emit(alerts[0])
        assert outs.wait_idle(10)
        outs._proc.kill()                        # the delivery process dies
        outs._proc.wait()
        for a in alerts[1:]:
            outs.emit(a)
        outs.close()
    st = outs.status()["h"]
    assert st["delivered"] == 1 and st["lost"] == 3 and st["queued"] == 0
    assert set(st["lost_by_reason"]) <= {"worker_died", "shutdown"}


def test_webhook_rejection_is_lost_at_once_with_reason(make_alerts) -> None:
    with WebhookReceiver(fail_first=100, fail_status=400) as recv:
        outs = OutputSet.from_options([f"{recv.url}?retries=5&backoff=0.01"])
        for a in make_alerts(3):
            outs.emit(a)
        assert outs.wait_idle(10)
        outs.close()
    st = outs.status()[outs.outputs[0].name]
    assert recv.posts == 3 and st["lost_by_reason"] == {"rejected": 3}


def test_otlp_receiver_gets_each_alert_with_its_attributes(make_alerts) -> None:
    alerts = make_alerts(5, "critical")
    with OtlpReceiver() as recv:
        outs = OutputSet.from_options([f"otlp+http://{recv.endpoint}"])
        for a in alerts:
            outs.emit(a, wall_offset_ns=1_700_000_000_000_000_000, hostname="host-a")
        assert outs.wait_idle(10)
        outs.close()
        records = recv.records()
        paths = set(recv.paths)
    assert paths == {"/v1/logs"}
    assert len(records) == 5
    resource, scope, rec = records[0]
    res = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert res["service.name"] == "coi-sentinel" and res["host.name"] == "host-a"
    assert scope.name == "coi_sentinel.outputs"
    assert rec.severity_number == 21 and rec.severity_text == "Critical"
    assert rec.time_unix_nano == 1_700_000_000_000_000_000 + alerts[0].ts_ns
    assert rec.body.string_value == alerts[0].output and rec.event_name == "coi_sentinel.alert"
    attrs = {kv.key: kv.value for kv in rec.attributes}
    assert attrs["rule"].string_value == "shell_in_agent"
    assert attrs["severity"].string_value == "critical"
    assert attrs["container"].string_value == "agent-1"
    assert attrs["process.pid"].int_value == 100
    assert attrs["output_fields.proc.pid"].int_value == 100
    assert attrs["output_fields.proc.pname"].string_value == "node"
    assert [v.string_value for v in attrs["tags"].array_value.values] == ["T1059", "shell"]
    assert sorted(r.attributes[0].value.string_value for *_x, r in records) == ["shell_in_agent"] * 5
    assert outs.status()[outs.outputs[0].name]["delivered"] == 5


def test_otlp_retries_until_delivered(make_alerts) -> None:
    with OtlpReceiver(fail_first=1) as recv:
        outs = OutputSet.from_options([f"otlp+http://{recv.endpoint}?name=o&backoff=0.01&retries=4"])
        for a in make_alerts(6):
            outs.emit(a)
        assert outs.wait_idle(20)
        outs.close()
        pids = sorted(next(kv.value.int_value for kv in r.attributes if kv.key == "process.pid")
                      for *_x, r in recv.records())
    assert pids == list(range(100, 106)) and recv.posts >= 2
    st = outs.status()["o"]
    assert (st["delivered"], st["lost"]) == (6, 0)


def test_file_output_rotates(tmp_path, make_alerts) -> None:
    tmp_path = tmp_path / "out"
    path = tmp_path / "alerts.jsonl"
    outs = OutputSet.from_options([f"file:{path}?max_bytes=6k&backups=2"])
    for a in make_alerts(40):
        outs.emit(a)
    outs.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"]
    assert all(p.stat().st_size <= 6 * 1024 for p in tmp_path.iterdir())
    lines = [orjson.loads(x) for p in tmp_path.iterdir() for x in p.read_bytes().splitlines()]
    assert lines and all(x["type"] == "alert" and x["source"] == "syscall" for x in lines)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert outs.status()[f"file:{path}"]["delivered"] == 40      # written; older files rotated away


def test_min_severity_and_rate_limit(tmp_path, make_alerts) -> None:
    path = tmp_path / "a.jsonl"
    outs = OutputSet.from_options([f"file:{path}?min=high&rate=3/h&name=f"])
    for a in make_alerts(5, "high") + make_alerts(4, "medium") + make_alerts(2, "high", rule="other"):
        outs.emit(a)
    outs.close()
    rules = [orjson.loads(x)["rule"] for x in path.read_bytes().splitlines()]
    assert rules == ["shell_in_agent"] * 3 + ["other"] * 2
    st = outs.status()["f"]
    assert (st["filtered"], st["suppressed"], st["delivered"], st["lost"]) == (4, 2, 5, 0)


def test_config_file_and_urls(tmp_path) -> None:
    cfg = tmp_path / "outputs.toml"
    cfg.write_text('[[outputs]]\nurl = "syslog+tcp://127.0.0.1:6601"\nmin_severity = "error"\n'
                   'rate = "20/m"\nformat = "falco"\n\n'
                   '[[outputs]]\nurl = "https://siem.example/hook"\nbatch = 50\nheaders = {X-Token = "sekr1t"}\n')
    outs = OutputSet.from_options(["stdout", "otlp+http://127.0.0.1:4318"], config=cfg, start=False)
    got = [(o.spec.kind, o.spec.target, o.spec.min_severity.label, str(o.spec.rate) if o.spec.rate else None)
           for o in outs.outputs]
    assert got == [("syslog", "127.0.0.1:6601", "high", "20/m"),
                   ("webhook", "https://siem.example/hook", "info", None),
                   ("stdout", "", "info", None),
                   ("otlp", "http://127.0.0.1:4318/v1/logs", "info", None)]
    assert outs.outputs[1].spec.headers == (("X-Token", "sekr1t"),)
    assert "sekr1t" not in str(outs.outputs[1].spec.describe())       # header values stay out of status
    assert parse_url("syslog:/run/x.sock").transport == "unix"
    assert parse_url("syslog+udp://[::1]:5514").target == "[::1]:5514"


@pytest.mark.parametrize("url, message", [
    ("ftp://x", "unknown output 'ftp'"),
    ("syslog+tcp://", "needs HOST:PORT"),
    ("stdout?min=loud", "unknown severity 'loud'"),
    ("stdout?rate=fast", "rate must look like"),
    ("file:/x?batch=3", "file output has no option 'batch'"),
    ("stdout?format=xml", "format must be one of json, falco"),
    ("http://h/?header=novalue", "header must be 'Name: value'"),
])
def test_bad_output_is_one_line(url, message) -> None:
    with pytest.raises(ConfigError) as err:
        parse_url(url)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sinks_write_losses_to_the_audit_log(tmp_path, make_alerts) -> None:
    from coi_sentinel.audit import AuditLog
    from coi_sentinel.trace import make_header

    class Refusing(WebhookReceiver):
        pass

    with Refusing(fail_first=100, fail_status=404) as recv:
        sinks = AlertSinks.open((f"{recv.url}?name=hook",))
        log = AuditLog(tmp_path / "audit.jsonl", make_header("watch"), events="all")
        for a in make_alerts(2):
            sinks.emit(a)
        assert sinks.outputs is not None and sinks.outputs.wait_idle(10)
        status = sinks.close(log)
        log.close()
    records = [orjson.loads(x) for x in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    loss = [r for r in records if r.get("record") == "output_loss"]
    assert loss and loss[0]["lost"] == {"hook": {"rejected": 2}}
    assert [r["status"]["hook"]["lost"] for r in records if r.get("record") == "outputs"] == [2]
    assert status is not None and status["hook"]["delivered"] == 0


def test_a_stalled_delivery_process_never_blocks_emit(tmp_path, make_alerts) -> None:
    """The delivery process is stopped (SIGSTOP): the pipe fills, then the bounded spill
    buffer; past that alerts are counted lost (queue_full) while emit keeps returning. Resumed,
    it delivers everything that was kept; delivered + lost = emitted."""
    import os
    import signal

    alerts = make_alerts(2000)                  # ~2.4 MB of records: more than pipe + spill
    outs = OutputSet.from_options([f"file:{tmp_path}/out/a.jsonl?name=f&max_bytes=1G"])
    outs.spill_limit = 64 * 1024
    assert outs.wait_idle(10)
    os.kill(outs._proc.pid, signal.SIGSTOP)
    try:
        for a in alerts:
            outs.emit(a)                        # would hang here if emit waited for the pipe
        outs.flush()                            # the event loop's end of batch: never waits either
        stalled = outs.status()["f"]
    finally:
        os.kill(outs._proc.pid, signal.SIGCONT)
    assert outs.wait_idle(20)
    outs.close()
    st = outs.status()["f"]
    assert stalled["lost_by_reason"].get("queue_full", 0) > 0 and stalled["delivered"] == 0
    assert st["lost_by_reason"] == stalled["lost_by_reason"]
    assert st["delivered"] + st["lost"] == 2000 and st["queued"] == 0
    lines = (tmp_path / "out" / "a.jsonl").read_bytes().splitlines()
    assert len(lines) == st["delivered"]


def test_a_burst_reaches_the_outputs_at_the_loops_tick_in_order(tmp_path, make_alerts) -> None:
    """Alerts emitted in a burst go to the delivery process together at the event loop's tick
    (one write, not one per alert): after the tick, with nothing else called, every alert is
    delivered, in the order emitted."""
    path = tmp_path / "a.jsonl"
    sinks = AlertSinks(OutputSet.from_options([f"file:{path}?name=f"]), None, "json")
    alerts = make_alerts(30)                    # ~40 KB: less than a write's worth
    try:
        for a in alerts:
            sinks.emit(a)
        sinks.tick()

        def lines() -> list[bytes]:
            return path.read_bytes().splitlines() if path.exists() else []
        assert _until(lambda: len(lines()) == 30, timeout=10)
        assert [orjson.loads(x)["output_fields"]["proc.pid"] for x in lines()] == list(range(100, 130))
    finally:
        sinks.close()
    assert sinks.outputs is not None and sinks.outputs.status()["f"]["delivered"] == 30
