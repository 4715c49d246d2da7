"""`crio-native verify [--root DIR] FILE`: check an attestation record
against the public key of the node whose state is under DIR (the configured
root by default).  Exit 0 and "valid: ..." when it verifies, 1 and
"invalid: <reason>" when it does not (or cannot be read)."""
from __future__ import annotations

import sys
from pathlib import Path

from crio_native.attestation.keys import load_public_key, public_key_path
from crio_native.attestation.record import parse_record, verify_record

VALID, INVALID = 0, 1


def run_verify(root: str, file: str) -> int:
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as e:
        return _invalid(f"cannot read {file}: {e.strerror or e}")
    try:
        public = load_public_key(public_key_path(root))
    except ValueError as e:
        return _invalid(str(e))
    ok, reason = verify_record(data, public)
    if not ok:
        return _invalid(reason)
    container = parse_record(data).get("container") or {}
    print(f"valid: container {container.get('id', '?')} ({container.get('name', '?')}) in pod "
          f"{container.get('pod_namespace', '?')}/{container.get('pod_name', '?')}: {reason}")
    return VALID


def _invalid(reason: str) -> int:
    print(f"invalid: {reason}", file=sys.stderr)
    return INVALID
