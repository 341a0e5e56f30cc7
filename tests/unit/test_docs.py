"""docs/events.md documents every event type and field the code emits."""

from __future__ import annotations

from pathlib import Path

import pytest

from coi_sentinel.events import model

pytestmark = pytest.mark.unit
DOC = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()


@pytest.mark.parametrize("cls", list(model.EVENT_CLASSES.values()), ids=lambda c: c.type.label)
def test_every_type_and_field_is_documented(cls):
    row = next((line for line in DOC.splitlines() if line.startswith(f"| `{cls.type.label}` |")), None)
    assert row is not None, f"{cls.type.label} has no row in docs/events.md"
    for name in model.FIELD_NAMES[cls]:
        if name in model.HEADER_FIELDS:
            assert f"`{name}`" in DOC
        else:
            assert f"`{name}`" in row, f"{cls.type.label}.{name} is not documented"


def test_every_alert_key_is_documented() -> None:
    """Each key of an alert record (and of its session and process objects) has a row."""
    from coi_sentinel.rules.alert import Alert, ProcessInfo
    from coi_sentinel.severity import Severity

    proc = ProcessInfo(2, 1, "sh", "/bin/sh", "sh", 0)
    alert = Alert("r", Severity.HIGH, "o", 1, (), proc, (proc,), "host", 0, None, None, (), None,
                  "r.yaml:1", "threshold", value=3, output_fields={"proc.name": "sh"})
    alerts_doc = DOC[DOC.index("# Alerts"):]
    rows = {line.split("|")[1].strip() for line in alerts_doc.splitlines() if line.startswith("| `")}
    documented = {name.strip("` ") for row in rows for name in row.split(",")}
    keys = set(alert.to_dict(wall_offset_ns=0, hostname="h")) | {"trace", "line"}
    assert keys <= documented, sorted(keys - documented)
    assert set(alert.to_falco(wall_offset_ns=0, hostname="h")) <= documented
    for key in proc.to_dict():
        assert f"`{key}`" in alerts_doc
