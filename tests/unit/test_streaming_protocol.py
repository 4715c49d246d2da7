from __future__ import annotations

import json

import pytest

from crio_native.streaming import protocol as sp


def test_success_status_is_the_kubelets():
    assert sp.encode_status(sp.success(), sp.V4) == b'{"metadata":{},"status":"Success"}'
    assert sp.encode_status(sp.success(), sp.V3) == b""


def test_exit_code_status_carries_the_code_as_its_cause():
    status = json.loads(sp.encode_status(sp.exit_failure(7, ("sh", "-c", "exit 7")), sp.V5))
    assert status["metadata"] == {} and status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "7"}]}
    assert status["message"].startswith("command terminated with non-zero exit code: ")
    assert sp.encode_status(sp.exit_failure(7), sp.V2).startswith(b"command terminated")


def test_internal_error_status():
    status = json.loads(sp.encode_status(sp.internal_error("boom"), sp.V4))
    assert (status["status"], status["reason"], status["code"]) == ("Failure", "InternalError", 500)
    assert "boom" in status["message"]


def test_resize_decoder_splits_documents_and_skips_garbage():
    d = sp.ResizeDecoder()
    assert d.feed(b'{"Width":80,"Height":24}{"Width":1') == [sp.TerminalSize(80, 24)]
    assert d.feed(b'00,"Height":50}\n') == [sp.TerminalSize(100, 50)]
    assert d.feed(b'not json\n{"Width":3,"Height":4}') == [sp.TerminalSize(3, 4)]
    assert d.feed(b'{"Width":-1,"Height":4}[1]') == []


@pytest.mark.parametrize("port,prefix", [(8080, b"\x90\x1f"), (1, b"\x01\x00")])
def test_port_prefix_is_little_endian(port, prefix):
    assert sp.port_prefix(port) == prefix


def test_protocol_capabilities():
    assert sp.has_json_status(sp.V4) and sp.has_json_status(sp.V5)
    assert not sp.has_json_status(sp.V3)
    assert sp.has_resize(sp.V3) and not sp.has_resize(sp.V2)
