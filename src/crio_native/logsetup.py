"""Structured logging for the daemon: logfmt-style text or one JSON object
per line.  Call sites pass key/value context with `extra=fields(...)`."""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname.lower(),
                               "msg": record.getMessage(), "logger": record.name}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
