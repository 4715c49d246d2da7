"""The SPDY remote-command versions besides v4 (test_streaming.py has v4):
exec and attach as the kubelet's remotecommand handlers serve each
X-Stream-Protocol-Version, against real containers through the daemon.

- v5 over SPDY is v4 (the JSON status); its CLOSE signal is WebSocket's.
- v3: the error stream carries the failure's text (nothing on success);
  with a tty the session waits for the resize stream and honours it.
- v2: v3 without resize: a tty session starts without the resize stream
  and ignores one the client opens anyway.
- v1 (`channel.k8s.io`): v2's streams, but once they are in the server
  resets the error stream and closes its half of stdin, so no status ever
  arrives; the end of the output streams is the end of the command.
- Negotiation: the first version in the client's order that the server
  speaks; none in common is 403 with the accepted list; no header is 400."""
from __future__ import annotations

import json
import time

import pytest

from crio_native._proto import api_pb2
from tests.e2e.stream_clients import V1, V4, V5, Refused, SpdyClient
from tests.e2e.test_streaming import EXIT7, assert_exit7, exec_url, run_container, start_pod
from tests.e2e.test_streaming import sdaemon, stream_image  # noqa: F401  (fixtures)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

V2, V3 = "v2.channel.k8s.io", "v3.channel.k8s.io"
ALL = (V5, V4, V3, V2, V1)
EXIT7_TEXT = (b"command terminated with non-zero exit code: error executing command "
              b"[sh -c echo out; echo err >&2; exit 7], exit code 7")


class Session:
    """One SPDY exec or attach: the client and the ids of its streams."""

    def __init__(self, url: str, proto: str, kinds=("error", "stdout")):
        self.client = SpdyClient(url, protocols=(proto,))
        assert self.client.protocol == proto
        self.ids = {kind: self.client.open(kind) for kind in kinds}

    def output(self, kind: str) -> bytes:
        return bytes(self.client.data.get(self.ids[kind], b""))

    def wait_ended(self, kind: str) -> bytes:
        return self.client.wait_ended(self.ids[kind])

    def wait_for(self, kind: str, text: bytes) -> bytes:
        return bytes(self.client.wait_for(self.ids[kind], text))

    def send(self, kind: str, data: bytes, fin: bool = False) -> None:
        self.client.send(self.ids[kind], data, fin)

    def was_reset(self, kind: str) -> bool:
        return self.ids[kind] in self.client.resets

    def finish(self) -> bytes | None:
        """Wait for the end: what the error stream carried, or None when the
        server reset it (v1)."""
        for kind in ("stdout", "stderr"):
            if kind in self.ids:
                self.wait_ended(kind)
        error = self.wait_ended("error")
        self.client.pump(10, until=lambda: self.client.closed)
        assert self.client.closed, "the server did not close the connection"
        self.client.close()
        return None if self.was_reset("error") else error


def assert_text_status(proto: str, error: bytes | None, expected: bytes) -> None:
    """v2/v3: the text as it is; v1: no status at all (the stream reset)."""
    if proto == V1:
        assert error is None, (proto, error)
    else:
        assert error == expected, (proto, error)


# ---- negotiation ---------------------------------------------------------------------------

def test_spdy_version_negotiation(sdaemon):
    d = sdaemon
    cid = run_container(d, start_pod(d))
    for proto in ALL:
        s = Session(exec_url(d, cid, ["true"]), proto)
        error = s.finish()
        if proto in (V4, V5):
            assert json.loads(error) == {"metadata": {}, "status": "Success"}, proto
        else:
            assert_text_status(proto, error, b"")
    # the client's order decides, as the kubelet's handshake
    for offer, chosen in (((V2, V4), V2), ((V1, V5, V3), V1), (("v9.channel.k8s.io", V3), V3)):
        client = SpdyClient(exec_url(d, cid, ["true"]), protocols=offer)
        assert client.protocol == chosen, (offer, client.protocol)
        client.close()
    with pytest.raises(Refused) as e:
        SpdyClient(exec_url(d, cid, ["true"]), protocols=("v9.channel.k8s.io",))
    assert e.value.status == 403 and b"unable to negotiate protocol" in e.value.body, e.value
    accepted = e.value.headers["x-accepted-stream-protocol-versions"]
    assert [p.strip() for p in accepted.split(",")] == list(ALL), accepted
    with pytest.raises(Refused) as e:
        SpdyClient(exec_url(d, cid, ["true"]), protocols=())
    assert e.value.status == 400 and b"X-Stream-Protocol-Version is required" in e.value.body


# ---- exec ------------------------------------------------------------------------------------

def test_exec_error_stream_per_version(sdaemon):
    """A non-zero exit, a success and a command that cannot start, per
    version: v5 the JSON status, v2/v3 the message alone, v1 nothing."""
    d = sdaemon
    cid = run_container(d, start_pod(d))
    for proto in (V5, V3, V2, V1):
        s = Session(exec_url(d, cid, EXIT7, stderr=True), proto, ("error", "stdout", "stderr"))
        error = s.finish()
        assert (s.output("stdout"), s.output("stderr")) == (b"out\n", b"err\n"), proto
        if proto == V5:
            status = json.loads(error)
            assert_exit7(status)
            assert status["message"] == EXIT7_TEXT.decode(), status
        else:
            assert_text_status(proto, error, EXIT7_TEXT)
        s = Session(exec_url(d, cid, ["/no/such/command"]), proto)
        error = s.finish()
        if proto == V5:
            status = json.loads(error)
            assert (status["reason"], status["code"]) == ("InternalError", 500), status
            assert status["message"].startswith("Internal error occurred: error executing "
                                                 "command in container: "), status
        elif proto == V1:
            assert error is None, error
        else:
            assert error.startswith(b"Internal error occurred: error executing command in "
                                    b"container: "), (proto, error)
            assert b"/no/such/command" in error, error


def test_exec_stdin_per_version(sdaemon):
    """v2/v3: the client FINs stdin to end it, and the server FINs its half
    of stdin at the end.  v1: the server resets the error stream and closes
    its half of stdin as soon as the streams are in, before the command has
    read anything; a v1 client never closes stdin."""
    d = sdaemon
    cid = run_container(d, start_pod(d))
    for proto in (V3, V2):
        s = Session(exec_url(d, cid, ["cat"], stdin=True), proto, ("error", "stdin", "stdout"))
        s.send("stdin", b"to cat\n", fin=True)
        assert s.finish() == b"", proto
        assert s.output("stdout") == b"to cat\n", proto
        assert s.ids["stdin"] in s.client.ended, "the server did not close its half of stdin"
    s = Session(exec_url(d, cid, ["head", "-n", "1"], stdin=True), V1,
                ("error", "stdin", "stdout"))
    c = s.client
    c.pump(10, until=lambda: s.ids["error"] in c.ended and s.ids["stdin"] in c.ended)
    assert s.was_reset("error"), "v1: the error stream was not reset"
    assert s.ids["stdin"] in c.ended and not s.was_reset("stdin")
    assert s.output("stdout") == b""
    s.send("stdin", b"one line\n")
    assert s.finish() is None
    assert s.output("stdout") == b"one line\n"


def test_exec_tty_resize_per_version(sdaemon):
    """v3 waits for the resize stream of a tty session and applies what
    comes on it; v2 starts without one and ignores one opened anyway (the
    builtin handler's fresh pty stays 0x0, for which busybox stty prints
    nothing)."""
    d = sdaemon
    cid = run_container(d, start_pod(d))
    cmd = ["sh", "-c", 'echo started; read go; echo "size=[$(stty size 2>/dev/null)]"']
    url = exec_url(d, cid, cmd, stdin=True, tty=True)
    s = Session(url, V2, ("error", "stdin", "stdout", "resize"))
    s.send("resize", json.dumps({"Width": 120, "Height": 40}).encode())
    s.wait_for("stdout", b"started")
    s.send("stdin", b"go\n")
    assert s.finish() == b""
    assert b"size=[]" in s.output("stdout"), s.output("stdout")
    # the same with v3: nothing runs until the resize stream is there
    s = Session(exec_url(d, cid, cmd, stdin=True, tty=True), V3, ("error", "stdin", "stdout"))
    s.client.pump(1.0)
    assert s.output("stdout") == b"", "v3 tty: the session started without its resize stream"
    s.ids["resize"] = s.client.open("resize")
    s.send("resize", json.dumps({"Width": 120, "Height": 40}).encode())
    s.wait_for("stdout", b"started")
    s.send("stdin", b"go\n")
    assert s.finish() == b""
    assert b"size=[40 120]" in s.output("stdout"), s.output("stdout")


# ---- attach ----------------------------------------------------------------------------------

def test_attach_per_version(sdaemon):
    """Attach to a container that reads a line, answers and exits 5: the
    answer arrives, then the end; no exit code on attach (success), so v2/v3
    send nothing on the error stream and v1 has reset it."""
    d = sdaemon
    pod = start_pod(d)
    for i, proto in enumerate((V3, V2, V1)):
        cid = run_container(d, pod, ["sh", "-c", 'read line; echo "got $line"; exit 5'],
                            name=f"reader{i}", stdin=True)
        s = Session(d.runtime.Attach(api_pb2.AttachRequest(
            container_id=cid, stdin=True, stdout=True)).url, proto, ("error", "stdin", "stdout"))
        s.client.pump(0.2)
        s.send("stdin", b"hello\n")
        assert_text_status(proto, s.finish(), b"")
        assert s.output("stdout") == b"got hello\n", (proto, s.output("stdout"))
        st = d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        deadline = time.monotonic() + 10
        while st.state != api_pb2.CONTAINER_EXITED and time.monotonic() < deadline:
            time.sleep(0.1)
            st = d.runtime.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=cid)).status
        assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 5), (proto, st)
