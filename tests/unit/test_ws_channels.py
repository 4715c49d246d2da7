"""The WebSocket channel subprotocols: framing and negotiation, as
apimachinery's wsstream does them."""
from __future__ import annotations

import pytest

from crio_native.streaming import protocol as sp
from crio_native.streaming import ws_channels as wc


def test_binary_framing_is_a_channel_byte():
    assert wc.V4_BINARY.encode(1, b"out") == b"\x01out"
    assert wc.V4_BINARY.decode(b"\x00in") == (0, b"in")
    assert wc.V4_BINARY.decode(b"") is None


def test_base64_framing_is_a_digit_and_base64_text():
    # wsstream's own example: "foo\n" on stdin is "0Zm9vCg=="
    assert wc.V1_TEXT.encode(0, b"foo\n") == "0Zm9vCg=="
    assert wc.V1_TEXT.decode(b"0Zm9vCg==") == (0, b"foo\n")
    assert wc.V4_TEXT.encode(1, b"") == "1"
    assert wc.V4_TEXT.decode(b"4eyJXaWR0aCI6MX0=") == (4, b'{"Width":1}')
    assert wc.V4_TEXT.decode(b"0Zm9v\r\nCg==") == (0, b"foo\n")     # line breaks skipped
    for bad in (b"0not base64!", b"0Zm9vCg"):                         # alphabet, padding
        assert wc.V4_TEXT.decode(bad) is None


@pytest.mark.parametrize("offered,supported,chosen", [
    ([], wc.REMOTE_COMMAND, ""),
    (["v9.channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io"], wc.REMOTE_COMMAND,
     "base64.channel.k8s.io"),
    (["v4.channel.k8s.io", "v5.channel.k8s.io"], wc.REMOTE_COMMAND, "v4.channel.k8s.io"),
    (["v5.base64.channel.k8s.io"], wc.REMOTE_COMMAND, None),
    (["v3.channel.k8s.io"], wc.REMOTE_COMMAND, None),
    ([], wc.PORT_FORWARD, ""),
    (["v4.base64.channel.k8s.io"], wc.PORT_FORWARD, "v4.base64.channel.k8s.io"),
    (["channel.k8s.io"], wc.PORT_FORWARD, None),
    (["v5.channel.k8s.io"], wc.PORT_FORWARD, None),
])
def test_negotiation_takes_the_clients_first_supported(offered, supported, chosen):
    got = wc.negotiate(offered, supported)
    assert (got.name if got else None) == chosen


def test_status_flavour_per_version():
    assert {p.name: p.status for p in wc.REMOTE_COMMAND} == {
        sp.V5: sp.V5, sp.V4: sp.V4, wc.V4_BASE64: sp.V4,
        sp.V1: sp.V1, wc.BASE64: sp.V1, "": sp.V1}
    assert [p.name for p in wc.REMOTE_COMMAND if p.close_signal] == [sp.V5]
    assert sp.encode_status(sp.success(), wc.V1_TEXT.status) == b""
