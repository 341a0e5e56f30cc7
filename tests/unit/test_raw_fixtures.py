"""Raw ring-buffer records captured from a real run decode, without a kernel, to their
recorded form (regenerate with tests/fixtures/make_raw_fixtures.py as root)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from coi_sentinel.events import codec
from coi_sentinel.events.decode import Decoder

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "raw" / "records.jsonl"
RECORDS = [orjson.loads(line) for line in FIXTURES.read_bytes().splitlines() if line.strip()]


def test_fixture_covers_every_kernel_record_type():
    kinds = {r["expected"]["type"] for r in RECORDS}
    assert kinds >= {"exec", "fork", "exit", "connect", "dup", "net_send", "file_open", "rename",
                     "unlink", "chmod", "priv", "chan"}


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r["expected"]["type"])
def test_raw_record_decodes_to_expected(rec):
    ev = Decoder(lambda _sid: "fixture").decode(bytes.fromhex(rec["raw"]))
    assert orjson.loads(codec.dumps(ev)) == rec["expected"]
