"""The WebSocket subprotocols besides v4/v5 binary: exec over the base64
variants and v1 channel.k8s.io, the negotiation rules (first supported in
the client's order, none = unnamed binary, nothing in common = 403), and
port-forward over WebSocket (two channels per port), against real
containers through the daemon."""
from __future__ import annotations

import json

import pytest

from tests.e2e.stream_clients import (B64, ERROR, STDERR, STDIN, STDOUT, V1, V4, V4_B64, V5,
                                      Refused, WsClient)
from tests.e2e.test_streaming import (ECHO, EXIT7, GET, HTTPD, assert_exit7, exec_url,
                                      port_forward_url, run_container, start_pod,
                                      wait_listening)
from tests.e2e.test_streaming import sdaemon, stream_image  # noqa: F401  (fixtures)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.mark.parametrize("proto", [B64, V4_B64])
def test_exec_websocket_base64(sdaemon, proto):
    """Text messages, '0'+channel then base64, both ways; v4 ends with the
    JSON status, the unversioned protocol with the failure's message only
    (nothing on success)."""
    d = sdaemon
    cid = run_container(d, start_pod(d))
    client = WsClient(exec_url(d, cid, EXIT7, stderr=True), protocols=(proto,))
    assert client.protocol == proto
    out = client.run()
    assert client.frame_types == {"text"}, client.frame_types
    assert out[STDOUT] == b"out\n" and out[STDERR] == b"err\n", out
    if proto == V4_B64:
        assert_exit7(json.loads(out[ERROR]))
    else:
        assert b"non-zero exit code" in out[ERROR] and b"exit code 7" in out[ERROR], out
    ok = WsClient(exec_url(d, cid, ["true"]), protocols=(proto,)).run()
    if proto == V4_B64:
        assert json.loads(ok[ERROR]) == {"metadata": {}, "status": "Success"}
    else:
        assert ok.get(ERROR, b"") == b"", ok       # only the "connected" message, empty
    # stdin: a payload that is not base64 is dropped, the next one arrives
    client = WsClient(exec_url(d, cid, ["head", "-n", "1"], stdin=True), protocols=(proto,))
    client.send_raw("0not base64!")
    client.send(STDIN, b"through base64\n")
    out = client.run()
    assert out[STDOUT] == b"through base64\n", out
    # resize on channel 4, base64 too
    url = exec_url(d, cid, ["sh", "-c", "read go; stty size"], stdin=True, tty=True)
    client = WsClient(url, protocols=(proto,))
    client.resize(90, 21)
    client.send(STDIN, b"go\n")
    assert b"21 90" in client.run()[STDOUT]


def test_exec_websocket_v1_and_negotiation(sdaemon):
    """channel.k8s.io and no subprotocol: binary channels, resize, and only
    a failure's message on the error channel; the client's order decides;
    an offer with nothing we speak is 403 Forbidden, as the kubelet's."""
    d = sdaemon
    cid = run_container(d, start_pod(d))
    for protocols in ((V1,), ()):
        client = WsClient(exec_url(d, cid, EXIT7, stderr=True), protocols=protocols)
        assert client.protocol == (protocols[0] if protocols else "")
        out = client.run()
        assert client.frame_types == {"binary"}
        assert out[STDOUT] == b"out\n" and out[STDERR] == b"err\n", out
        assert out[ERROR].startswith(b"command terminated with non-zero exit code"), out
        assert not out[ERROR].startswith(b"{"), out
        ok = WsClient(exec_url(d, cid, ["true"]), protocols=protocols).run()
        assert ok.get(ERROR, b"") == b"", ok
    url = exec_url(d, cid, ["sh", "-c", "read go; stty size"], stdin=True, tty=True)
    client = WsClient(url, protocols=(V1,))
    client.resize(77, 13)
    client.send(STDIN, b"go\n")
    assert b"13 77" in client.run()[STDOUT]
    # the first of the client's list that the server speaks
    client = WsClient(exec_url(d, cid, ["true"]), protocols=("v9.channel.k8s.io", B64, V4))
    assert client.protocol == B64
    client.run()
    with pytest.raises(Refused) as e:
        WsClient(exec_url(d, cid, ["true"]), protocols=("v9.channel.k8s.io", "v3.channel.k8s.io"))
    assert e.value.status == 403 and b"not supported" in e.value.body, e.value


def test_port_forward_websocket(sdaemon):
    """Per port i, channel 2i data and 2i+1 error, each starting with the
    port: echo through nc, two ports on one connection, base64 framing, a
    refused port reported on its error channel."""
    d = sdaemon
    pod = start_pod(d, host_network=False)
    wait_listening(d, run_container(d, pod, HTTPD, name="web"))
    wait_listening(d, run_container(d, pod, ECHO, name="echo"), 9000)
    # echo, several messages on one forwarded connection
    ws = WsClient(port_forward_url(d, pod, query=[9000]), protocols=(V4,))
    ws.forward(0, b"ping\n")
    ws.wait_for(0, b"ping\n")
    ws.forward(0, b"pong\n")
    ws.wait_for(0, b"ping\npong\n")
    assert ws.port_channel(0) == (9000, b"ping\npong\n")
    assert ws.port_channel(1) == (9000, b"")
    ws.close()
    # two ports on one connection: channels 0/1 for 8080, 2/3 for 9000
    ws = WsClient(port_forward_url(d, pod, query=[8080, 9000]), protocols=(V4,))
    ws.forward(0, GET)
    ws.forward(1, b"second port\n")
    ws.wait_for(2, b"second port\n")
    ws.wait_for(0, b"hello-from-pod")
    port, reply = ws.port_channel(0)
    assert port == 8080 and b" 200 " in reply.split(b"\r\n")[0], reply
    assert ws.port_channel(2) == (9000, b"second port\n")
    assert ws.port_channel(1) == (8080, b"") and ws.port_channel(3) == (9000, b"")
    ws.close()
    # v4.base64: the same channels in text messages; the RPC's ports when
    # the URL has none; the connection closes once httpd has answered
    ws = WsClient(port_forward_url(d, pod, ports=[8080]), protocols=(V4_B64,))
    assert ws.protocol == V4_B64
    ws.forward(0, GET)
    ws.run()
    assert ws.frame_types == {"text"}
    port, reply = ws.port_channel(0)
    assert port == 8080 and b"hello-from-pod" in reply, reply
    # nothing listens on 8081: its error channel says so, the other port works
    ws = WsClient(port_forward_url(d, pod, query=[8081, 9000]), protocols=())
    assert ws.protocol == ""
    ws.forward(1, b"still here\n")
    ws.wait_for(2, b"still here\n")
    ws.wait_for(1, b"refused")
    port, message = ws.port_channel(1)
    assert port == 8081 and b"8081" in message and b"refused" in message.lower(), message
    assert ws.port_channel(0) == (8081, b"")
    ws.close()
    # port forward speaks neither v5 nor the unversioned channel protocols
    for protocols in ((V5,), (B64,), (V1,)):
        with pytest.raises(Refused) as e:
            WsClient(port_forward_url(d, pod, query=[8080]), protocols=protocols)
        assert e.value.status == 403, e.value
    with pytest.raises(Refused) as e:
        WsClient(port_forward_url(d, pod, query=["x"]), protocols=(V4,))
    assert e.value.status == 400 and b"port" in e.value.body
