"""What the remote-command and port-forward protocols carry, independent of
the transport (WebSocket or SPDY): protocol names, channel numbers, the
status written on the error stream, the resize messages.

The status is the kubelet's (k8s.io/kubelet/pkg/cri/streaming/remotecommand):
a metav1.Status as JSON for v4 and v5, whose failure for a non-zero exit
carries the code as the cause of type (JSON "reason") ExitCode, which
client-go turns into an exec.CodeExitError; v1 to v3 write only the error
message, and nothing on success.  (Over SPDY the kubelet resets a v1
error stream before the command even starts: spdy_session.py.)"""
from __future__ import annotations

import json
from dataclasses import dataclass

# remote command protocols, newest first (X-Stream-Protocol-Version over
# SPDY, Sec-WebSocket-Protocol over WebSocket)
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
# What the kubelet's streaming server accepts over SPDY
# (remotecommand.SupportedStreamingProtocols): v5 is v4 there, its CLOSE
# signal being WebSocket's only; channel.k8s.io is the unnumbered first one.
SPDY_PROTOCOLS = (V5, V4, V3, V2, V1)
# (the WebSocket subprotocols, with their framings: ws_channels.py)
PORTFORWARD_SPDY = "portforward.k8s.io"

# WebSocket channels (the first byte of each binary message)
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255          # v5: [255, channel] -- the client closed that channel (stdin)

# SPDY stream types (header "streamtype")
STREAM_ERROR = "error"
STREAM_STDIN = "stdin"
STREAM_STDOUT = "stdout"
STREAM_STDERR = "stderr"
STREAM_RESIZE = "resize"
STREAM_DATA = "data"                     # port forward


def has_json_status(protocol: str) -> bool:
    return protocol in (V4, V5)


def has_resize(protocol: str) -> bool:
    return protocol not in (V1, V2)


def success() -> dict:
    return {"metadata": {}, "status": "Success"}


def exit_failure(code: int, cmd: tuple[str, ...] | list[str] = ()) -> dict:
    """A process that exited with a non-zero `code`.  The message is the
    kubelet's around the runtime's CodeExitError, worded as containerd and
    CRI-O word it (the command as Go prints a []string: `[sh -c exit 7]`);
    it is all a v1-v3 client gets."""
    what = f"error executing command [{' '.join(cmd)}], exit code {code}" if cmd \
        else f"exit code {code}"
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {what}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error(message: str) -> dict:
    """apierrors.NewInternalError: anything but an exit code."""
    return {"metadata": {}, "status": "Failure",
            "message": f"Internal error occurred: {message}", "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


def encode_status(status: dict, protocol: str) -> bytes:
    """The bytes for the error stream: the JSON status for v4/v5; the
    message alone before (nothing at all on success)."""
    if has_json_status(protocol):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return b""
    return status.get("message", "").encode()


@dataclass(frozen=True)
class TerminalSize:
    width: int
    height: int


class ResizeDecoder:
    """TerminalSize JSON objects ({"Width": w, "Height": h}) out of a byte
    stream: SPDY's resize stream is one JSON document after another, a
    WebSocket message one each; a malformed one is skipped."""

    def __init__(self):
        self._buf = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[TerminalSize]:
        self._buf += data.decode(errors="replace")
        out: list[TerminalSize] = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return out
            try:
                doc, end = self._decoder.raw_decode(text)
            except ValueError:
                # incomplete (wait for more) unless a whole line is garbage
                if "\n" in text:
                    self._buf = text.split("\n", 1)[1]
                    continue
                self._buf = text
                return out
            self._buf = text[end:]
            size = size_from_json(doc)
            if size is not None:
                out.append(size)


def size_from_json(doc) -> TerminalSize | None:
    if not isinstance(doc, dict):
        return None
    w, h = doc.get("Width"), doc.get("Height")
    if not isinstance(w, int) or not isinstance(h, int) or not (0 <= w < 65536 and 0 <= h < 65536):
        return None
    return TerminalSize(w, h)


def port_prefix(port: int) -> bytes:
    """Port forward over WebSocket: each channel starts with its port,
    little-endian u16 (kubelet portforward/websocket.go)."""
    return port.to_bytes(2, "little")
