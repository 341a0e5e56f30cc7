"""The ctypes mirrors against what bcc derived from bpf/include/events.h (sizes and offsets)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from coi_sentinel.assets import asset_dir
from coi_sentinel.events import structs

from support import require_bpf

pytestmark = pytest.mark.bpf


def _offsets(cls, prefix: str = "") -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for name, ctype, *_ in cls._fields_:
        if name.startswith("__pad"):
            continue
        desc = getattr(cls, name)
        out[prefix + name] = (desc.offset, desc.size)
        if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
            for k, (o, s) in _offsets(ctype, prefix + name + ".").items():
                out[k] = (desc.offset + o, s)
    return out


@pytest.fixture(scope="module")
def bcc_layout():
    require_bpf()
    from bcc import BPF

    src = Path(__file__).with_name("layout.bpf.c").read_text()
    b = BPF(text=src.encode(), cflags=[f"-I{asset_dir('bpf') / 'include'}"])
    yield {name: b[f"layout_{name}".encode()].Leaf for name in structs.C_NAMES}
    b.cleanup()


@pytest.mark.parametrize("name", sorted(structs.C_NAMES))
def test_mirror_matches_bcc(bcc_layout, name):
    mirror = structs.C_NAMES[name]
    derived = bcc_layout[name]
    assert ctypes.sizeof(mirror) == ctypes.sizeof(derived), name
    assert _offsets(mirror) == _offsets(derived)
