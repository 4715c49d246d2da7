"""cri/wire/headers.py: the request header checks the server does instead of
h2's own, with h2's validator as the oracle (same verdict on any block)."""
from __future__ import annotations

import pytest
from h2.exceptions import ProtocolError
from h2.utilities import HeaderValidationFlags, validate_headers
from hypothesis import given, settings
from hypothesis import strategies as st

from crio_native.cri.wire.headers import Malformed, request_head

REQUEST = HeaderValidationFlags(is_client=False, is_trailer=False, is_response_header=False,
                                is_push_promise=False)
GOOD = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"localhost"),
        (b":path", b"/runtime.v1.RuntimeService/Version"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        (b"user-agent", b"grpc-python/1.85"), (b"grpc-timeout", b"10S")]


def h2_rejects(headers: list[tuple[bytes, bytes]]) -> bool:
    try:
        list(validate_headers(headers, REQUEST))
    except ProtocolError:
        return True
    return False


def we_reject(headers: list[tuple[bytes, bytes]]) -> bool:
    try:
        request_head(headers)
    except Malformed:
        return True
    return False


def replaced(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, value if n == name else v) for n, v in GOOD]


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in GOOD if n != name]


def test_a_grpc_request_head():
    head = request_head(GOOD + [(b"x-id-bin", b"AAE"), (b"x-note", b"caf\xc3\xa9")])
    assert (head.method, head.path) == ("POST", "/runtime.v1.RuntimeService/Version")
    assert head.headers[0] == ("content-type", "application/grpc")
    assert head.headers[-1] == ("x-note", "café")


MALFORMED = {
    "upper-case name": GOOD + [(b"X-Trace", b"1")],
    "space in a name": GOOD + [(b"x trace", b"1")],
    "colon inside a name": GOOD + [(b"x:trace", b"1")],
    "non-ASCII name": GOOD + [(b"x-caf\xc3\xa9", b"1")],
    "empty name": GOOD + [(b"", b"1")],
    "NUL in a value": GOOD + [(b"x-trace", b"a\x00b")],
    "LF in a value": GOOD + [(b"x-trace", b"a\nb")],
    "CR in a value": GOOD + [(b"x-trace", b"a\rb")],
    "value with a leading space": GOOD + [(b"x-trace", b" a")],
    "value with a trailing tab": GOOD + [(b"x-trace", b"a\t")],
    "connection": GOOD + [(b"connection", b"close")],
    "keep-alive": GOOD + [(b"keep-alive", b"5")],
    "proxy-connection": GOOD + [(b"proxy-connection", b"close")],
    "transfer-encoding": GOOD + [(b"transfer-encoding", b"chunked")],
    "upgrade": GOOD + [(b"upgrade", b"h2c")],
    "te other than trailers": replaced(b"te", b"gzip"),
    "pseudo-header after a field": GOOD + [(b":authority", b"localhost")],
    "duplicate :path": [GOOD[0], GOOD[3]] + GOOD[1:],
    "response pseudo-header": [(b":status", b"200")] + GOOD,
    "unknown pseudo-header": [(b":trace", b"1")] + GOOD,
    ":protocol without CONNECT": [(b":protocol", b"websocket")] + GOOD,
    "no :method": without(b":method"),
    "no :scheme": without(b":scheme"),
    "no :path": without(b":path"),
    "empty :path": replaced(b":path", b""),
    "neither :authority nor host": without(b":authority"),
    "host differs from :authority": GOOD + [(b"host", b"other")],
    "two host headers": without(b":authority") + [(b"host", b"a"), (b"host", b"a")],
    "CONNECT with :path": replaced(b":method", b"CONNECT"),
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_heads(headers):
    assert we_reject(headers)
    assert h2_rejects(headers)


ACCEPTED = {
    "a gRPC call": GOOD,
    "te: Trailers": replaced(b"te", b"Trailers"),
    "host alone": without(b":authority") + [(b"host", b"localhost")],
    "host equal to :authority": GOOD + [(b"host", b"localhost")],
    "empty value": GOOD + [(b"x-trace", b"")],
    "non-UTF-8 value": GOOD + [(b"x-trace", b"\xff\xfe")],
    "inner space in a value": GOOD + [(b"x-trace", b"a b")],
    "GET (answered 405, not malformed)": replaced(b":method", b"GET"),
}


@pytest.mark.parametrize("headers", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_request_heads(headers):
    assert not we_reject(headers)
    assert not h2_rejects(headers)


# mostly legal names and values, so that one odd field decides the verdict
NAMES = (st.sampled_from([b"content-type", b"grpc-timeout", b"x-trace", b"host", b"te"])
         | st.sampled_from([b":method", b":scheme", b":authority", b":path", b":status",
                            b":protocol", b":x", b":", b"connection", b"upgrade", b"X-Up",
                            b"x:y", b"", b"a b"])
         | st.binary(max_size=4))
VALUES = (st.sampled_from([b"localhost", b"trailers", b"v"])
          | st.sampled_from([b"POST", b"GET", b"CONNECT", b"http", b"/a", b"TRAILERS", b"gzip",
                             b"", b" x", b"x\t", b"a\x00", b"\n", b"\r", b"\xff"])
          | st.binary(max_size=4))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=3), st.integers(0, len(GOOD)),
       st.booleans())
def test_same_verdict_as_h2(extra, at, drop):
    """Any header block (the gRPC one with a few fields put in, or one
    left out): rejected by headers.py exactly when h2's own request
    validation rejects it."""
    headers = GOOD[:at] + extra + GOOD[at + drop:]
    assert we_reject(headers) == h2_rejects(headers)
