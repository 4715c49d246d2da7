"""The node's Ed25519 signing key (the `cryptography` package).

The private key lives at `[runtime] attestation_key` (default
<root>/attestation/node.key, PKCS#8 PEM, mode 0600) and is made at the
daemon's first start.  Its public key is always written to
<root>/attestation/node.pub (SubjectPublicKeyInfo PEM): `crio-native verify
--root DIR` reads it there, whoever keeps the private key elsewhere.

`cryptography` costs the daemon about 8 MiB resident (its Rust extension and
the objects it makes), so the daemon does not load it:
ensure_node_key checks the files' form with the standard library alone and
makes a missing key in a short-lived child process (`python -m
crio_native.attestation.keys`, with `cryptography`); the key itself is read
at the first signature (the first StartContainer), as its raw seed, and
signs with the libcrypto the process already maps (_native.ed25519: Ed25519
signatures are deterministic, so they are the bytes `cryptography` would
make).  A key file of another form than the one `cryptography` writes is
still read with `cryptography`."""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from crio_native.errors import ConfigError
from crio_native.state.files import atomic_write

if TYPE_CHECKING:
    from crio_native._native.ed25519 import SigningKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                                   Ed25519PublicKey)

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
    from cryptography.hazmat.primitives import serialization

    return raw_key_id(public.public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw))


def raw_key_id(raw_public: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw_public).hexdigest()


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The public key in `path`; ValueError (with the reason) if it is none."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class NodeKey:
    """The node key as its raw 32-byte Ed25519 seed (RFC 8032), signing
    through the process's libcrypto."""
    seed: bytes = field(repr=False)     # the secret: never in a log line
    path: Path

    @cached_property
    def _signer(self) -> SigningKey:
        from crio_native._native.ed25519 import SigningKey

        return SigningKey(self.seed)

    @cached_property
    def public_raw(self) -> bytes:
        return self._signer.public_key()

    @property
    def public(self) -> Ed25519PublicKey:
        """As a `cryptography` key, for verifying (loads `cryptography`)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return Ed25519PublicKey.from_public_bytes(self.public_raw)

    @property
    def id(self) -> str:
        return raw_key_id(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign(data)

    @classmethod
    def load_or_create(cls, root: str | Path, configured: str = "") -> "NodeKey":
        """The node key (made on first use) with its public half written
        under `root`.  A key file that cannot be read or is not an Ed25519
        key is a ConfigError naming runtime.attestation_key."""
        path = Path(configured) if configured else default_key_path(root)
        key = cls(_read_seed(path) if path.exists() else _create(path), path)
        pub_path = public_key_path(root)
        wanted = spki_pem(key.public_raw)
        try:
            current = pub_path.read_bytes()
        except FileNotFoundError:
            current = b""
        if current != wanted:
            pub_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(pub_path.parent, 0o755)
            atomic_write(pub_path, wanted, mode=0o644)
        return key


def _create(path: Path) -> bytes:
    """A new key written to `path` (with `cryptography`: in the daemon this
    runs in ensure_node_key's child process); its seed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, pem, mode=0o600)
    return private.private_bytes_raw()


def _read_seed(path: Path) -> bytes:
    """The seed of the key in `path`: of the form `cryptography` writes with
    the standard library, of any other with `cryptography`."""
    try:
        der = pem_body(path.read_bytes(), "PRIVATE KEY")
    except OSError as e:
        raise ConfigError("runtime.attestation_key", f"cannot read {path}: "
                          f"{e.strerror or e}") from None
    if der is not None and len(der) == len(PKCS8_HEADER) + 32 and der.startswith(PKCS8_HEADER):
        return der[len(PKCS8_HEADER):]
    return _read_private(path).private_bytes_raw()


def _read_private(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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


# ---- at start, without `cryptography` ------------------------------------------------------

# The DER of an Ed25519 key in the forms `cryptography` writes (RFC 8410):
# an unencrypted PKCS#8 v1 private key and a SubjectPublicKeyInfo, each a
# fixed header (OID 1.3.101.112) and 32 raw bytes.
PKCS8_HEADER = bytes.fromhex("302e020100300506032b657004220420")
SPKI_HEADER = bytes.fromhex("302a300506032b6570032100")


def pem_body(data: bytes, label: str) -> bytes | None:
    """The DER inside a PEM file holding exactly one `label` block; None if it is not that."""
    lines = data.strip().splitlines()
    if len(lines) < 3 or lines[0] != b"-----BEGIN %s-----" % label.encode() \
            or lines[-1] != b"-----END %s-----" % label.encode():
        return None
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None


def has_form(path: Path, label: str, header: bytes) -> bool:
    """Whether `path` is a PEM `label` block of `header` and 32 bytes (OSError if unreadable)."""
    der = pem_body(path.read_bytes(), label)
    return der is not None and len(der) == len(header) + 32 and der.startswith(header)


def spki_pem(raw_public: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a raw public key, byte for byte as
    `cryptography` writes it (64-column base64 lines, a final newline)."""
    b64 = base64.b64encode(SPKI_HEADER + raw_public)
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return b"\n".join([b"-----BEGIN PUBLIC KEY-----", *lines, b"-----END PUBLIC KEY-----", b""])


def ensure_node_key(root: str | Path, configured: str = "") -> Path:
    """At start: the node key's path, once a key of the form `cryptography`
    writes and a public key file are there.  Anything else (no key yet, no
    node.pub, another key format) goes to NodeKey.load_or_create in a child
    process, which makes what is missing or refuses the key (ConfigError
    naming runtime.attestation_key, as when the daemon loaded it itself).
    Whether node.pub is the public half of the key is checked at the first
    signature, where load_or_create writes it again if not."""
    path = Path(configured) if configured else default_key_path(root)
    try:
        if has_form(path, "PRIVATE KEY", PKCS8_HEADER) \
                and has_form(public_key_path(root), "PUBLIC KEY", SPKI_HEADER):
            return path
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ConfigError("runtime.attestation_key", f"cannot read {e.filename}: "
                          f"{e.strerror or e}") from None
    child = subprocess.run([sys.executable, "-m", __name__, str(root), configured],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if child.returncode == CHILD_CONFIG_ERROR:
        raise ConfigError("runtime.attestation_key", child.stdout.strip())
    if child.returncode != 0:
        raise ConfigError("runtime.attestation_key", "cannot make or read the node key: "
                          + (child.stderr.strip().splitlines() or ["?"])[-1])
    return path


CHILD_CONFIG_ERROR = 2


def main(argv: list[str]) -> int:
    """The child of ensure_node_key: ROOT [CONFIGURED]."""
    try:
        NodeKey.load_or_create(argv[0], argv[1] if len(argv) > 1 else "")
    except ConfigError as e:
        print(e.reason)
        return CHILD_CONFIG_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
