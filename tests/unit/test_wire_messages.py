"""cri/wire's pieces of the gRPC wire format: the message prefix, gzip'd
requests and their limit, grpc-message percent-encoding, grpc-timeout."""
from __future__ import annotations

import gzip
import struct
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crio_native.cri.wire.messages import (WireError, check_prefix, frame, gunzip,
                                           request_message)
from crio_native.cri.wire.status import StatusCode, decode_message, encode_message, parse_timeout

LIMIT = 4096


@given(st.binary(max_size=LIMIT))
def test_a_framed_message_is_read_back(payload):
    framed = frame(payload)
    assert framed[:5] == struct.pack(">BI", 0, len(payload))
    check_prefix(framed, LIMIT)
    assert request_message(framed, "identity", LIMIT) == payload


@given(st.binary(max_size=LIMIT))
def test_a_gzip_message_is_read_back(payload):
    body = gzip.compress(payload)
    framed = struct.pack(">BI", 1, len(body)) + body
    assert request_message(framed, "gzip", LIMIT) == payload


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=4))
def test_a_cut_or_padded_body_is_internal(payload, cut):
    framed = frame(payload)
    broken = framed[:len(framed) - cut] if cut else framed + b"x"
    if broken == framed or len(broken) < 5 and cut == 0:
        return
    with pytest.raises(WireError) as info:
        request_message(broken, "identity", LIMIT)
    assert info.value.code in (StatusCode.INTERNAL, StatusCode.UNIMPLEMENTED)


def test_the_prefix_alone_says_too_large():
    with pytest.raises(WireError) as info:
        check_prefix(struct.pack(">BI", 0, LIMIT + 1), LIMIT)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert info.value.message == f"Received message larger than max ({LIMIT + 1} vs. {LIMIT})"


def test_a_second_message_is_refused():
    with pytest.raises(WireError) as info:
        check_prefix(frame(b"a") + frame(b"b"), LIMIT)
    assert info.value.code == StatusCode.UNIMPLEMENTED


def test_a_gzip_bomb_stops_at_the_limit():
    bomb = gzip.compress(b"\0" * (LIMIT * 100))
    assert len(bomb) < LIMIT
    with pytest.raises(WireError) as info:
        gunzip(bomb, LIMIT)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED


def test_compressed_without_encoding_and_bad_gzip_are_internal():
    body = gzip.compress(b"x")
    with pytest.raises(WireError) as info:
        request_message(struct.pack(">BI", 1, len(body)) + body, "identity", LIMIT)
    assert info.value.code == StatusCode.INTERNAL
    with pytest.raises(WireError) as info:
        request_message(struct.pack(">BI", 1, 3) + b"abc", "gzip", LIMIT)
    assert info.value.code == StatusCode.INTERNAL


@given(st.text())
def test_grpc_message_round_trips_and_is_printable_ascii(text):
    encoded = encode_message(text)
    assert all(0x20 <= ord(c) < 0x7F for c in encoded)
    expected = text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    assert decode_message(encoded) == expected
    # what any percent-decoder (here the standard library's) makes of it
    assert urllib.parse.unquote(encoded, errors="replace") == expected


@pytest.mark.parametrize("text, wire", [
    ("pod sandbox x not found", "pod sandbox x not found"),
    ("100% done", "100%25 done"),
    ("ü", "%C3%BC"),
    ("a\nb", "a%0Ab"),
])
def test_grpc_message_examples(text, wire):
    assert encode_message(text) == wire


def test_a_malformed_escape_is_kept():
    assert decode_message("50%zz%4") == "50%zz%4"


@pytest.mark.parametrize("value, seconds", [
    ("1S", 1.0), ("250m", 0.25), ("2M", 120.0), ("1H", 3600.0), ("5u", 5e-6),
    ("99999999n", 0.099999999),
])
def test_grpc_timeout(value, seconds):
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "1", "123456789S", "1s", "-1S", "1.5S", "١S"])
def test_bad_grpc_timeout(value):
    with pytest.raises(ValueError):
        parse_timeout(value)
