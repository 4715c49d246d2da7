"""Structured logging for the daemon: logfmt-style text or one JSON object
per line on stderr, or, when stderr is the journal (a systemd service),
entries in journald's native protocol with the fields as journal fields.
Call sites pass key/value context with `extra=fields(...)`."""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any, Callable, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

JOURNAL_STREAM_ENV = "JOURNAL_STREAM"
SYSLOG_IDENTIFIER = "crio-native"

# syslog(3) priorities, as journalctl -p reads them
PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
              logging.CRITICAL: 2}

# Journal fields a reader filters on (`journalctl CONTAINER_ID=...`), named
# as conmon and docker's journald driver name theirs.
JOURNAL_NAMES = {"container": "CONTAINER_ID", "container_id": "CONTAINER_ID",
                 "pod_id": "POD_ID", "sandbox_id": "POD_ID", "method": "CRI_METHOD"}
# Names that depend on the module logging: a bare `id` is the id of what it
# manages, and the container modules' `pod` is the pod's id.
NAMES_BY_LOGGER = (("crio_native.container", {"id": "CONTAINER_ID", "pod": "POD_ID"}),
                   ("crio_native.sandbox", {"id": "POD_ID"}))
# Set by journald or by this handler: a call site's field of that name gets a prefix.
RESERVED_NAMES = frozenset(
    "MESSAGE MESSAGE_ID PRIORITY CODE_FILE CODE_LINE CODE_FUNC ERRNO SYSLOG_FACILITY "
    "SYSLOG_IDENTIFIER SYSLOG_PID SYSLOG_TIMESTAMP SYSLOG_RAW DOCUMENTATION TID LOGGER "
    "THREAD_NAME INVOCATION_ID USER_INVOCATION_ID UNIT USER_UNIT OBJECT_PID".split())
_NOT_IN_NAME = re.compile(r"[^A-Z0-9_]")

_OURS = "_crio_native_handler"   # marks the handler configure_logging installed


def fields(**kv: Any) -> dict[str, Any]:
    """`extra=` argument carrying structured fields for one record."""
    return {"fields": kv}


def _timestamp(record: logging.LogRecord) -> str:
    secs = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{secs}.{int(record.msecs * 1000):06d}Z"


def _quote(value: Any) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-._/:@+=," for c in text):
        return text
    return json.dumps(text)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"time={_timestamp(record)}", f"level={record.levelname.lower()}",
                 f"msg={_quote(record.getMessage())}"]
        for key, value in getattr(record, "fields", {}).items():
            parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JournalTextFormatter(logging.Formatter):
    """MESSAGE of a journal entry: the message and its fields as key=value
    (what `journalctl -u crio-native` shows); the journal keeps the time and
    level itself, and a traceback on lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [record.getMessage()]
        for key, value in getattr(record, "fields", {}).items():
            parts.append(f"{key}={_quote(value)}")
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname.lower(),
                               "msg": record.getMessage(), "logger": record.name}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def journal_name(key: str, logger: str) -> str:
    """The journal field name for a call site's field `key`."""
    for prefix, names in NAMES_BY_LOGGER:
        if key in names and (logger == prefix or logger.startswith(prefix + ".")):
            return names[key]
    if key in JOURNAL_NAMES:
        return JOURNAL_NAMES[key]
    name = _NOT_IN_NAME.sub("_", key.upper())[:56]
    if not name[:1].isalpha() or name in RESERVED_NAMES:
        name = "CRIO_" + name
    return name


def journal_fields(record: logging.LogRecord) -> dict[str, str]:
    return {journal_name(key, record.name): str(value)
            for key, value in getattr(record, "fields", {}).items() if value is not None}


JournalSend = Callable[..., Any]


class JournalHandler(logging.Handler):
    """Each record as one journal entry (native protocol, through
    systemd-python's journal.send): MESSAGE, PRIORITY, the source location,
    and every structured field as a journal field."""

    def __init__(self, send: JournalSend) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(self.format(record),
                       CODE_FILE=record.pathname, CODE_LINE=record.lineno,
                       CODE_FUNC=record.funcName,
                       PRIORITY=str(PRIORITIES.get(record.levelno, 6)),
                       SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER, LOGGER=record.name,
                       THREAD_NAME=record.threadName or "", **journal_fields(record))
        except Exception:  # noqa: BLE001 - logging must not raise into the caller
            self.handleError(record)


def stderr_is_journal(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stderr) is the journal: systemd.exec(5) sets
    $JOURNAL_STREAM to "<device>:<inode>" of the stream it connected, so a
    service compares that with its own fd before it switches to the native
    protocol (a child whose stderr was redirected inherits the variable)."""
    dev, sep, ino = os.environ.get(JOURNAL_STREAM_ENV, "").partition(":")
    if not sep:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


def journal_sender() -> JournalSend | None:
    """systemd-python's journal.send, or None where it cannot be loaded."""
    try:
        from systemd import journal  # type: ignore[import-untyped]  # no stubs
    except ImportError:
        return None
    send: JournalSend = journal.send
    return send


def _formatter(fmt: str, journal: bool) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    return JournalTextFormatter() if journal else TextFormatter()


def configure_logging(level: str, fmt: str, stream: TextIO | None = None,
                      journal: JournalSend | None = None) -> None:
    """Log to `stream` (default stderr); to the journal instead when
    `journal` is given, or when stderr is the journal and no stream is."""
    fallback = False
    if journal is None and stream is None and stderr_is_journal():
        journal = journal_sender()
        fallback = journal is None
    handler: logging.Handler = JournalHandler(journal) if journal is not None else \
        logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_formatter(fmt, journal is not None))
    setattr(handler, _OURS, fmt)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    if fallback:
        logging.getLogger(__name__).warning(
            "stderr is the journal but systemd-python cannot be loaded: logging plain text")


def reconfigure_logging(level: str, fmt: str) -> None:
    """Change the level and format of the logging configure_logging set up,
    in place: other threads keep logging meanwhile."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, _OURS, None) not in (None, fmt):
            handler.setFormatter(_formatter(fmt, isinstance(handler, JournalHandler)))
            setattr(handler, _OURS, fmt)
    root.setLevel(LEVELS[level])
