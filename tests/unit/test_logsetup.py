"""Structured log output in both formats."""
from __future__ import annotations

import io
import json
import logging

import pytest

from crio_native.logsetup import configure_logging, fields


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_fields(restore_root_logger):
    out = io.StringIO()
    configure_logging("debug", "json", out)
    logging.getLogger("t").debug("rpc", extra=fields(method="RuntimeService.Version", code="OK"))
    record = json.loads(out.getvalue())
    assert record["msg"] == "rpc" and record["level"] == "debug"
    assert record["method"] == "RuntimeService.Version" and record["code"] == "OK"
    assert record["time"].endswith("Z")


def test_text_lines_quote_values_with_spaces(restore_root_logger):
    out = io.StringIO()
    configure_logging("info", "text", out)
    log = logging.getLogger("t")
    log.debug("hidden")
    log.info("pod started", extra=fields(name="web 1", ns="default"))
    line = out.getvalue().strip()
    assert "hidden" not in line
    assert 'msg="pod started"' in line and 'name="web 1"' in line and "ns=default" in line
