"""The attestation record and exactly which bytes are signed.

Canonical form (what `canonical_bytes` returns and the signature covers):
the record as a JSON object WITHOUT its "signature" member, serialized as
UTF-8 with object keys sorted, no whitespace between tokens (separators ","
and ":"), non-ASCII characters written as themselves, and only `"`, `\\` and
control characters escaped (as Python's json module and RFC 8785 do).  The
record holds only strings, integers, booleans, null, arrays and objects with
ASCII keys, never floats, so this is also its RFC 8785 (JCS) form.

"signature" is the 64-byte Ed25519 signature of those bytes, as 128
lowercase hex digits.  The record is stored (and returned in ContainerStatus)
in the same canonical form with "signature" included."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from crio_native.attestation.keys import key_id, verify_signature

if TYPE_CHECKING:   # `cryptography` is loaded at the first signature (keys.py)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VERSION = 1
SIGNATURE = "signature"
UNVERIFIED = "unverified"


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the record less its signature."""
    return canonical_json({k: v for k, v in record.items() if k != SIGNATURE})


def digest(doc: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


def spec_digest(spec: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the whole OCI spec (config.json)."""
    return digest(spec)


def seccomp_digest(spec: dict[str, Any]) -> str | None:
    """sha256 of the canonical JSON of linux.seccomp; None when unconfined."""
    profile = (spec.get("linux") or {}).get("seccomp")
    return digest(profile) if profile else None


def image_digest(image_ref: str) -> str:
    """The manifest digest of a repo digest (`name@sha256:...`); "" without one."""
    _, at, found = image_ref.rpartition("@")
    return found if at else ""


def record_body(spec: dict[str, Any], *, container: dict[str, Any], image: dict[str, Any],
                handler: str, landlock: str | None, node: dict[str, Any]) -> dict[str, Any]:
    """What a container runs with, read from its final spec; unsigned."""
    process = spec.get("process") or {}
    linux = spec.get("linux") or {}
    userns = any(ns.get("type") == "user" for ns in linux.get("namespaces") or [])
    return {
        "version": VERSION,
        "container": container,
        "handler": handler,
        "spec_digest": spec_digest(spec),
        "seccomp_profile_digest": seccomp_digest(spec),
        "selinux_label": process.get("selinuxLabel", ""),
        "apparmor_profile": process.get("apparmorProfile", ""),
        "capabilities": process.get("capabilities") or {},
        "no_new_privileges": bool(process.get("noNewPrivileges", False)),
        "user_namespace": {"uid_mappings": linux.get("uidMappings") or [],
                           "gid_mappings": linux.get("gidMappings") or []} if userns else None,
        "landlock_policy": landlock,
        "image": image,
        "node": node,
    }


def signed_record(body: dict[str, Any], sign: Any) -> dict[str, Any]:
    """`body` plus its signature (`sign`: bytes -> 64-byte Ed25519 signature)."""
    return {**body, SIGNATURE: sign(canonical_bytes(body)).hex()}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_record(data: bytes) -> dict[str, Any]:
    """The record in `data`; ValueError with the reason if it is not one."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    except ValueError as e:
        raise ValueError(f"not a record: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a record: a JSON object is expected")
    return doc


def verify_record(data: bytes, public: Ed25519PublicKey) -> tuple[bool, str]:
    """(valid, reason) for a stored record against the node's public key."""
    try:
        record = parse_record(data)
    except ValueError as e:
        return False, str(e)
    sig = record.get(SIGNATURE)
    if not isinstance(sig, str):
        return False, "no signature"
    try:
        raw = bytes.fromhex(sig)
    except ValueError:
        return False, "signature: not hex"
    if raw.hex() != sig or len(raw) != 64:
        return False, "signature: not 128 lowercase hex digits"
    node = record.get("node")
    signer = node.get("key_id") if isinstance(node, dict) else None
    if record.get("version") != VERSION:
        return False, f"unknown record version {record.get('version')!r}"
    if not verify_signature(public, raw, canonical_bytes(record)):
        if signer != key_id(public):
            return False, (f"signature does not verify: the record names key {signer}, "
                           f"this node's key is {key_id(public)}")
        return False, "signature does not verify: the record was changed after signing"
    return True, f"signed by node key {key_id(public)}"
