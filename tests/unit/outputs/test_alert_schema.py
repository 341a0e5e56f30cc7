"""The alert record and `--format falco`: Falco's documented top-level keys and types."""

from __future__ import annotations

import re
import socket

import orjson
import pytest

from coi_sentinel import records
from coi_sentinel.rules.alert import rfc3339_ns
from coi_sentinel.severity import FALCO_PRIORITIES, Severity

pytestmark = pytest.mark.unit

#: Falco's JSON alert (falco.yaml defaults: json_include_output_property, _tags_property and
#: output_fields on, message off): key -> JSON type
FALCO_KEYS = {"time": str, "rule": str, "priority": str, "source": str, "hostname": str,
              "output": str, "tags": list, "output_fields": dict}
RFC3339_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def test_falco_shape_exactly(make_alerts) -> None:
    (alert,) = make_alerts(1, "critical")
    d = orjson.loads(orjson.dumps(alert.to_falco()))
    assert set(d) == set(FALCO_KEYS)
    for key, typ in FALCO_KEYS.items():
        assert type(d[key]) is typ, key
    assert d["priority"] == "Critical" and d["priority"] in FALCO_PRIORITIES
    assert d["source"] == "syscall" and d["hostname"] == socket.gethostname()
    assert RFC3339_NS.match(d["time"])
    assert d["tags"] == ["T1059", "shell"] and all(isinstance(t, str) for t in d["tags"])
    assert d["rule"] == "shell_in_agent"
    assert d["output"] == "shell bash (bash -c echo 0) under node pid=100 args=-c echo 0"


def test_output_fields_are_every_template_field_typed(make_alerts) -> None:
    (alert,) = make_alerts(1)
    fields = alert.to_falco()["output_fields"]
    assert fields == {"proc.name": "bash", "proc.cmdline": "bash -c echo 0", "proc.pname": "node",
                      "proc.pid": 100, "proc.args": "-c echo 0"}
    assert isinstance(fields["proc.pid"], int)


def test_record_has_falco_keys_and_ours(make_alerts) -> None:
    (alert,) = make_alerts(1, "medium")
    d = orjson.loads(orjson.dumps(alert.to_dict(wall_offset_ns=0, hostname="h1")))
    assert set(FALCO_KEYS) <= set(d)
    assert (d["priority"], d["severity"], d["hostname"], d["source"]) == ("Warning", "medium", "h1", "syscall")
    assert d["rule_location"].endswith("shell_in_agent-medium.yaml:1")
    assert d["time"] == "1970-01-01T00:00:01.000000000Z" and d["ts_ns"] == 1_000_000_000
    assert d["session"] == {"id": None, "tool": None} and d["container"] == "agent-1"
    assert d["process"]["pid"] == 100 and [a["name"] for a in d["ancestry"]] == ["node"]


def test_time_uses_the_given_wall_offset() -> None:
    assert rfc3339_ns(1_764_719_999_123_456_789) == "2025-12-02T23:59:59.123456789Z"


def test_time_of_seconds_seen_before_and_new_ones() -> None:
    """The formatted seconds are kept (a few): each time is still its own, across second,
    day and year boundaries and back."""
    import time

    base = 1_767_225_598_999_999_999            # 2025-12-31T23:59:58.999999999Z
    for step in (0, 1, 2, 1_000_000_000, 1, 86_400_000_000_000, 0, 3):
        for wall in (base + step, base - step, base + step * 7):
            sec, ns = divmod(wall, 1_000_000_000)
            want = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns:09d}Z"
            assert rfc3339_ns(wall) == want
    assert rfc3339_ns(base + 1) == "2025-12-31T23:59:59.000000000Z"


@pytest.mark.parametrize("name, ours", [
    ("info", "info"), ("informational", "info"), ("debug", "info"), ("notice", "low"),
    ("warning", "medium"), ("WARNING", "medium"), ("error", "high"), ("critical", "critical"),
    ("alert", "critical"), ("emergency", "critical"), ("made-up", None), (3, None),
])
def test_one_vocabulary_reads_falco_and_sigma(name, ours) -> None:
    found = Severity.lookup(name)
    assert (found.label if found is not None else None) == ours


def test_falco_mapping_round_trips() -> None:
    for sev in Severity:
        assert Severity.lookup(sev.falco) is sev
        assert sev.falco in FALCO_PRIORITIES
    assert [s.syslog for s in Severity] == [6, 5, 4, 3, 2]


def test_responder_and_audit_share_the_vocabulary() -> None:
    from coi_sentinel.audit import severity as audit_severity
    from coi_sentinel.respond.policy import SEVERITIES
    from coi_sentinel.rules.model import Severity as RuleSeverity

    assert RuleSeverity is Severity
    assert SEVERITIES == tuple(s.label for s in Severity)
    assert audit_severity.rank("Error") == audit_severity.rank("high") == int(Severity.HIGH)


def test_an_output_record_decodes_its_bytes_when_read() -> None:
    """Record.data (what syslog, OTLP and Falco's form read) is the record sent as raw."""
    from coi_sentinel.outputs.base import Record
    from coi_sentinel.records import AlertRecord, ProcessInfo
    from coi_sentinel.severity import Severity

    p = ProcessInfo(1, 0, "sh", "/bin/sh", "sh -c x", 0)
    rec = AlertRecord(rule="r", severity=Severity.HIGH, output="o", time="t", hostname="h", ts_ns=5,
                      process=p, ancestry=(p,), output_fields={"proc.name": "sh"}, tags=("a",))
    out = Record(None, records.dumps(rec), 7)
    assert out.data == records.to_dict(rec) | {"tags": ["a"]} and out.data is out.data
    assert out.severity is Severity.HIGH and out.falco()["priority"] == "Error"
