"""What an OCI runtime CLI (runc, crun) says about a failure: the messages
of its stderr or of its `--log` file (JSON lines with "msg", from
`--log-format json`), which go into our error messages."""
from __future__ import annotations

import json
from pathlib import Path


def runtime_messages(output: bytes | str) -> str:
    """The runtime's messages from its stderr or `--log` file: the "msg" of
    each JSON line at level error or worse (every JSON line's if none is),
    plain lines as they are; joined with '; '."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    errors: list[str] = []
    others: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and "msg" in entry:
            level = str(entry.get("level", "error"))
            (errors if level in ("error", "fatal", "panic") else others).append(str(entry["msg"]))
        else:
            errors.append(line)
    chosen = errors or others
    return "; ".join(dict.fromkeys(chosen))   # unique, in order


def runtime_log_messages(path: Path) -> str:
    """runtime_messages of a `--log` file; "" when it cannot be read."""
    try:
        return runtime_messages(path.read_bytes())
    except OSError:
        return ""
