"""Signed attestation records: what each started container ran with, signed
with the node's Ed25519 key (keys.py), in a canonical form (record.py), kept
beside the container's record (store.py) and checked by `crio-native verify`."""
from crio_native.attestation.keys import NodeKey, default_key_path, public_key_path
from crio_native.attestation.record import (canonical_bytes, signed_record, spec_digest,
                                            verify_record)
from crio_native.attestation.signer import Attestor

__all__ = ["Attestor", "NodeKey", "canonical_bytes", "default_key_path", "public_key_path",
           "signed_record", "spec_digest", "verify_record"]
