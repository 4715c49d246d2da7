"""The WebSocket channel subprotocols of Kubernetes (apimachinery's
wsstream, as the kubelet's streaming server registers them): their names,
how a message carries its channel, and which one a connection gets.

Two framings:

- binary (`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`, and
  no subprotocol at all): a binary message whose first byte is the channel;
- base64 (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`): a text
  message whose first character is '0' + channel and whose rest is the
  payload in standard base64 (with padding).

wsstream reads a message the same way whatever its frame type, and so do
we: what decides the decoding is the subprotocol, not text versus binary.
A base64 payload that does not decode is dropped (wsstream logs it and
reads on).

The version says what channel 3 (error) carries at the end of an exec or
attach: v4 and v5 a metav1.Status as JSON, on success too; the unversioned
ones (and no subprotocol) only the failure's message, nothing on success.
Every one of them has the resize channel 4 (the kubelet opens channels 0-4
for all).  v5 adds the client's close signal, [255, channel].

Port forward accepts no subprotocol, `v4.channel.k8s.io` and
`v4.base64.channel.k8s.io` (the kubelet's portforward/websocket.go)."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from crio_native.streaming import protocol as sp

NONE = ""                                  # the client offered no subprotocol
CHANNEL = sp.V1                            # "channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
ZERO = ord("0")


@dataclass(frozen=True)
class ChannelProtocol:
    name: str
    base64: bool = False
    status: str = sp.V1            # the status flavour for protocol.encode_status
    close_signal: bool = False     # v5: [255, n] closes channel n

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """One message: bytes go out as a binary frame, str as text."""
        if self.base64:
            return chr((ZERO + channel) & 0xFF) + base64.b64encode(data).decode("ascii")
        return bytes((channel,)) + data

    def decode(self, message: bytes) -> tuple[int, bytes] | None:
        """(channel, payload) of a client message; None for an empty one or
        a base64 payload that does not decode."""
        if not message:
            return None
        if not self.base64:
            return message[0], message[1:]
        try:
            # Go's decoder skips line breaks; anything else outside the
            # alphabet, or bad padding, is an error
            payload = base64.b64decode(message[1:].replace(b"\r", b"").replace(b"\n", b""),
                                       validate=True)
        except (binascii.Error, ValueError):
            return None
        return (message[0] - ZERO) & 0xFF, payload


V5_BINARY = ChannelProtocol(sp.V5, status=sp.V5, close_signal=True)
V4_BINARY = ChannelProtocol(sp.V4, status=sp.V4)
V4_TEXT = ChannelProtocol(V4_BASE64, base64=True, status=sp.V4)
V1_BINARY = ChannelProtocol(CHANNEL)
V1_TEXT = ChannelProtocol(BASE64, base64=True)
UNNAMED = ChannelProtocol(NONE)

REMOTE_COMMAND = (V5_BINARY, V4_BINARY, V4_TEXT, V1_BINARY, V1_TEXT, UNNAMED)
PORT_FORWARD = (V4_BINARY, V4_TEXT, UNNAMED)


def negotiate(offered: list[str], supported: tuple[ChannelProtocol, ...]
              ) -> ChannelProtocol | None:
    """wsstream's rule: the first subprotocol in the client's order that
    the server supports; a client that offers none gets the unnamed one
    (binary, unversioned); None when nothing matches (the kubelet's
    x/net/websocket server then answers 403 Forbidden)."""
    by_name = {p.name: p for p in supported}
    for name in offered or [NONE]:
        if name in by_name:
            return by_name[name]
    return None


def names(supported: tuple[ChannelProtocol, ...]) -> list[str]:
    """The named subprotocols, for messages."""
    return [p.name for p in supported if p.name]
