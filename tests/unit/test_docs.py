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
