"""The node's Ed25519 signing key (the `cryptography` package).

The private key lives at `[runtime] attestation_key` (default
<root>/attestation/node.key, PKCS#8 PEM, mode 0600) and is made at the
daemon's first start.  Its public key is always written to
<root>/attestation/node.pub (SubjectPublicKeyInfo PEM): `crio-native verify
--root DIR` reads it there, whoever keeps the private key elsewhere."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from crio_native.errors import ConfigError
from crio_native.state.files import atomic_write

DIRECTORY = "attestation"
KEY_NAME = "node.key"
PUBLIC_NAME = "node.pub"
ALGORITHM_NAME = "ed25519"


def default_key_path(root: str | Path) -> Path:
    return Path(root) / DIRECTORY / KEY_NAME


def public_key_path(root: str | Path) -> Path:
    return Path(root) / DIRECTORY / PUBLIC_NAME


def key_id(public: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key: names the key in a record."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The public key in `path`; ValueError (with the reason) if it is none."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the node's public key {path}: "
                         f"{e.strerror or e}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def verify_signature(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class NodeKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def id(self) -> str:
        return key_id(self.public)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    @classmethod
    def load_or_create(cls, root: str | Path, configured: str = "") -> "NodeKey":
        """The node key (made on first use) with its public half written
        under `root`.  A key file that cannot be read or is not an Ed25519
        key is a ConfigError naming runtime.attestation_key."""
        path = Path(configured) if configured else default_key_path(root)
        if path.exists():
            private = _read_private(path)
        else:
            private = Ed25519PrivateKey.generate()
            pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(path, pem, mode=0o600)
        key = cls(private, path)
        pub_path = public_key_path(root)
        wanted = public_pem(key.public)
        try:
            current = pub_path.read_bytes()
        except FileNotFoundError:
            current = b""
        if current != wanted:
            pub_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(pub_path.parent, 0o755)
            atomic_write(pub_path, wanted, mode=0o644)
        return key


def _read_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except OSError as e:
        raise ConfigError("runtime.attestation_key", f"cannot read {path}: "
                          f"{e.strerror or e}") from None
    except (ValueError, TypeError) as e:
        raise ConfigError("runtime.attestation_key", f"{path}: not an unencrypted PEM "
                          f"private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("runtime.attestation_key", f"{path}: not an Ed25519 key")
    return key
