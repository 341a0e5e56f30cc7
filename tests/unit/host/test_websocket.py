"""The websocket client's frames (RFC 6455): the accept key, masking, length encodings."""

from __future__ import annotations

import struct

import pytest

from coi_sentinel.host import websocket as W

pytestmark = pytest.mark.unit


def test_accept_key_is_the_rfcs_example():
    # RFC 6455, section 1.3
    assert W.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_masking_twice_gives_the_payload_back():
    key = b"\x37\xfa\x21\x3d"
    # RFC 6455, section 5.7: "Hello" masked with this key
    assert W.mask(key, b"Hello") == bytes([0x7f, 0x9f, 0x4d, 0x51, 0x58])
    data = bytes(range(256)) * 3 + b"tail"
    assert W.mask(key, W.mask(key, data)) == data
    assert W.mask(key, b"") == b""


@pytest.mark.parametrize("size,head_len,code", [(0, 2, 0), (125, 2, 125), (126, 4, 126),
                                                (65535, 4, 126), (65536, 10, 127)])
def test_a_client_frame_is_final_masked_and_sized(size, head_len, code):
    key = b"\x01\x02\x03\x04"
    payload = bytes(i % 251 for i in range(size))
    f = W.frame(W.BINARY, payload, key=key)
    assert f[0] == 0x80 | W.BINARY and f[1] == 0x80 | code
    if code == 126:
        assert struct.unpack("!H", f[2:4])[0] == size
    elif code == 127:
        assert struct.unpack("!Q", f[2:10])[0] == size
    assert f[head_len:head_len + 4] == key
    assert W.mask(key, f[head_len + 4:]) == payload
