"""Structured log output in both formats."""
from __future__ import annotations

import io
import json
import logging
import os

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


# ---- the journal (a systemd service's stderr) -------------------------------

class FakeJournal:
    """Stands in for systemd.journal.send: keeps (MESSAGE, fields) of each entry."""

    def __init__(self):
        self.entries: list[tuple[str, dict]] = []

    def __call__(self, message, **kw):
        self.entries.append((message, kw))


def test_journal_entries_carry_fields_as_journal_fields(restore_root_logger):
    journal = FakeJournal()
    configure_logging("info", "text", journal=journal)
    logging.getLogger("crio_native.container.manager").info(
        "container created", extra=fields(id="c0ffee", name="web 1", pod="p1"))
    logging.getLogger("crio_native.sandbox.manager").warning("pod", extra=fields(
        id="p2", pod="name_ns_uid_0"))
    logging.getLogger("crio_native.cri").error("rpc", extra=fields(
        method="RuntimeService.Version", message="clash", **{"0x": 1}))
    (m1, f1), (m2, f2), (m3, f3) = journal.entries
    assert m1 == 'container created id=c0ffee name="web 1" pod=p1'
    assert (f1["CONTAINER_ID"], f1["NAME"], f1["POD_ID"]) == ("c0ffee", "web 1", "p1")
    assert (f1["PRIORITY"], f1["SYSLOG_IDENTIFIER"]) == ("6", "crio-native")
    assert f1["LOGGER"] == "crio_native.container.manager" and f1["CODE_FILE"].endswith(".py")
    assert f2["POD_ID"] == "p2" and f2["POD"] == "name_ns_uid_0" and f2["PRIORITY"] == "4"
    assert f3["CRI_METHOD"] == "RuntimeService.Version" and f3["PRIORITY"] == "3"
    assert f3["CRIO_MESSAGE"] == "clash" and f3["CRIO_0X"] == "1"   # never MESSAGE itself


def test_journal_message_in_json_and_traceback(restore_root_logger):
    journal = FakeJournal()
    configure_logging("info", "json", journal=journal)
    logging.getLogger("t").info("x", extra=fields(a=1))
    assert json.loads(journal.entries[0][0])["a"] == 1
    configure_logging("info", "text", journal=journal)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed")
    message = journal.entries[-1][0]
    assert message.startswith("failed\nTraceback") and "ValueError: boom" in message


def test_stderr_is_journal_compares_the_stream_with_journal_stream(monkeypatch, tmp_path):
    from crio_native.logsetup import stderr_is_journal

    with open(tmp_path / "err", "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        assert not stderr_is_journal(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not stderr_is_journal(f)       # inherited by a child that redirected stderr
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not stderr_is_journal(f)


def test_reconfigure_changes_level_and_format_in_place(restore_root_logger):
    from crio_native.logsetup import reconfigure_logging

    out = io.StringIO()
    configure_logging("info", "text", out)
    handler = logging.getLogger().handlers[0]
    log = logging.getLogger("t")
    log.debug("hidden")
    reconfigure_logging("debug", "json")
    log.debug("shown")
    assert logging.getLogger().handlers == [handler]
    assert "hidden" not in out.getvalue()
    assert json.loads(out.getvalue().splitlines()[-1])["msg"] == "shown"
