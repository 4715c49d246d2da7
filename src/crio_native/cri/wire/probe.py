"""A Version call over the CRI socket with an `h2` client: the daemon's
readiness probe (READY=1 once a client would be answered), without grpc."""
from __future__ import annotations

import socket
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ResponseReceived, StreamEnded, StreamReset, TrailersReceived

from crio_native.cri.wire.messages import frame
from crio_native.cri.wire.status import StatusCode, decode_message

VERSION_PATH = "/runtime.v1.RuntimeService/Version"


def call_version(path: str, timeout: float) -> None:
    """Until `path` answers an empty VersionRequest with OK (retrying while
    the socket refuses); TimeoutError after `timeout` seconds, OSError if the
    answer is an error status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _call_once(path, deadline)
        except (ConnectionRefusedError, FileNotFoundError):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{path} did not answer in {timeout}s") from None
            time.sleep(0.05)


def _call_once(path: str, deadline: float) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.connect(path)
        conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                (":authority", "localhost"), (":path", VERSION_PATH),
                                ("content-type", "application/grpc"), ("te", "trailers")])
        conn.send_data(sid, frame(b""), end_stream=True)
        sock.sendall(conn.data_to_send())
        status: dict[str, str] = {}
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError(f"{path} closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, (ResponseReceived, TrailersReceived)):
                    status.update(event.headers)   # type: ignore[arg-type]
                elif isinstance(event, StreamReset):
                    raise ConnectionResetError(f"{path} reset the Version call")
                elif isinstance(event, StreamEnded):
                    code = int(status.get("grpc-status", StatusCode.UNKNOWN))
                    if code != StatusCode.OK:
                        raise OSError(f"Version answered {StatusCode(code).name}: "
                                      f"{decode_message(status.get('grpc-message', ''))}")
                    return
            sock.sendall(conn.data_to_send())
