"""The YAML layer: line numbers, duplicate keys, no YAML 1.1 surprises, errors not tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from coi_sentinel.rules.diagnostics import Diagnostics
from coi_sentinel.rules.yamlload import LineDict, LineList, load_file, load_text

pytestmark = pytest.mark.unit


def test_lines_of_items_keys_and_block_values() -> None:
    diags = Diagnostics()
    data = load_text("- rule: a\n  condition: >\n    x and\n    y\n  items: [1, 2]\n", "f.yaml", diags)
    assert not list(diags)
    assert isinstance(data, LineList) and data.item_line(0) == 1
    item = data[0]
    assert isinstance(item, LineDict)
    assert item.line == 1
    assert item.key_line("condition") == 2
    assert item.value_line("condition") == 3      # the text of a block scalar starts below '>'
    assert item.value_line("items") == 5
    assert item["condition"] == "x and y\n"


def test_duplicate_key_is_an_error_with_both_lines_and_first_value_kept() -> None:
    diags = Diagnostics()
    data = load_text("- rule: a\n  severity: low\n  severity: high\n", "f.yaml", diags)
    assert [str(d) for d in diags] == ["f.yaml:3: error: duplicate key 'severity' (first at line 2)"]
    assert data[0]["severity"] == "low"


def test_only_true_and_false_are_booleans_and_dates_stay_text() -> None:
    diags = Diagnostics()
    data = load_text("[yes, no, on, off, true, False, 2024-01-01, =, 0755]", "f.yaml", diags)
    assert data == ["yes", "no", "on", "off", True, False, "2024-01-01", "=", 0o755]


def test_syntax_error_becomes_a_diagnostic_with_its_line() -> None:
    diags = Diagnostics()
    assert load_text("- rule: a\n  items: [1, 2\n- rule: b\n", "f.yaml", diags) is None
    (d,) = list(diags)
    assert d.level == "error" and d.source.path == "f.yaml" and d.source.line == 3
    assert d.message.startswith("invalid YAML: ")


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    diags = Diagnostics()
    assert load_file(tmp_path / "missing.yaml", diags) is None
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"- rule: a\n- rule: \xff\xfe\n")
    assert load_file(bad, diags) is None
    assert [(Path(d.source.path).name, d.source.line) for d in diags] == [("missing.yaml", 1), ("bad.yaml", 2)]
    assert "cannot read the file" in list(diags)[0].message
    assert list(diags)[1].message == "the file is not UTF-8 text"


def test_unhashable_key_is_reported() -> None:
    diags = Diagnostics()
    load_text("- {[a]: 1}\n", "f.yaml", diags)
    assert [str(d) for d in diags] == ["f.yaml:1: error: a mapping key must be a plain value"]
