"""Sigstore (cosign) image signatures, for the `sigstoreSigned` requirement
of containers-policy.json(5) with public keys (keyPath, keyPaths, keyData,
keyDatas).

Where they live (as cosign and containers/image store them): an OCI
manifest tagged `<algorithm>-<hex of the image's manifest digest>.sig` in
the image's own repository.  Each layer of media type
application/vnd.dev.cosign.simplesigning.v1+json is one signature: the blob
is the "simple signing" payload, a JSON document naming the image by
`critical.image.docker-manifest-digest` and `critical.identity.docker-reference`,
and the layer's annotation dev.cosignproject.cosign/signature is the
base64 signature over the blob's exact bytes.

A signature counts when it verifies with one of the requirement's keys, its
payload is of the cosign type, its digest is the one pulled, and its
identity matches per `signedIdentity`.  One such signature satisfies the
requirement.  Fulcio certificates, Rekor inclusion proofs and the `pki`
form are not implemented: a requirement that asks for them refuses the
image (never silently accepts it)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from crio_native.errors import ConfigError, InvalidArgument
from crio_native.image.errors import ManifestUnknown, PolicyRejected
from crio_native.image.reference import Reference, parse_reference, validate_digest

SIGNATURE_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
KEY_FIELDS = ("keyPath", "keyPaths", "keyData", "keyDatas")
# Accepted by containers/image but not built here: asking for them refuses the image.
UNSUPPORTED_FIELDS = ("fulcio", "pki", "rekorPublicKeyPath", "rekorPublicKeyPaths",
                      "rekorPublicKeyData", "rekorPublicKeyDatas")
KNOWN_FIELDS = {"type", "signedIdentity", *KEY_FIELDS, *UNSUPPORTED_FIELDS}
IDENTITIES = {"matchExact": (), "matchRepoDigestOrExact": (), "matchRepository": (),
              "exactReference": ("dockerReference",), "exactRepository": ("dockerRepository",),
              "remapIdentity": ("prefix", "signedPrefix")}
DEFAULT_IDENTITY = {"type": "matchRepoDigestOrExact"}
MAX_SIGNATURES = 64
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
# cosign hashes the payload with the curve's own size
_EC_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}


class SignatureSource(Protocol):
    """What verification needs of a registry client (distribution.RegistryClient)."""

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]: ...

    def get_blob(self, digest: str, limit: int = ...) -> bytes: ...


# ---- policy entries ----------------------------------------------------------

def validate_requirement(req: dict, key: str, source: str) -> None:
    """ConfigError for a malformed sigstoreSigned entry (as containers/image
    refuses the whole file for one)."""
    unknown = set(req) - KNOWN_FIELDS
    if unknown:
        raise ConfigError(key, f"sigstoreSigned: unknown field(s) {sorted(unknown)}", source)
    trust = [f for f in (*KEY_FIELDS, "fulcio", "pki") if f in req]
    if len(trust) != 1:
        raise ConfigError(key, "sigstoreSigned: exactly one of keyPath, keyPaths, keyData, "
                          f"keyDatas, fulcio or pki must be set (found {trust or 'none'})",
                          source)
    value = req[trust[0]]
    if trust[0] in ("keyPath", "keyData") and not (isinstance(value, str) and value):
        raise ConfigError(key, f"sigstoreSigned: {trust[0]} must be a non-empty string", source)
    if trust[0] in ("keyPaths", "keyDatas") and not (
            isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
        raise ConfigError(key, f"sigstoreSigned: {trust[0]} must be a non-empty list of "
                          "strings", source)
    identity = req.get("signedIdentity", DEFAULT_IDENTITY)
    if not isinstance(identity, dict) or identity.get("type") not in IDENTITIES:
        raise ConfigError(key, f"sigstoreSigned: unknown signedIdentity {identity!r}", source)
    for name in IDENTITIES[identity["type"]]:
        if not isinstance(identity.get(name), str) or not identity[name]:
            raise ConfigError(key, f"sigstoreSigned: signedIdentity {identity['type']} needs "
                              f"{name}", source)


def unsupported(req: dict) -> str:
    """What of `req` this module cannot check ("" when it can check all of it)."""
    asked = [f for f in UNSUPPORTED_FIELDS if f in req]
    identity = (req.get("signedIdentity") or DEFAULT_IDENTITY).get("type")
    if identity == "remapIdentity":
        asked.append("signedIdentity remapIdentity")
    return ", ".join(asked)


# ---- keys ----------------------------------------------------------------------

@dataclass(frozen=True)
class PublicKey:
    key: Any
    fingerprint: str      # "sha256:" + hex of the DER SubjectPublicKeyInfo
    origin: str           # where the policy got it, for messages

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, payload)
            elif isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, payload, ec.ECDSA(_EC_HASHES[self.key.curve.name]()))
            else:
                self.key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def public_key_from_pem(pem: bytes, origin: str) -> PublicKey:
    """ValueError naming `origin` when it is no usable public key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"{origin}: not a PEM public key ({e})") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_HASHES:
        raise ValueError(f"{origin}: unsupported elliptic curve {key.curve.name}")
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey,
                            rsa.RSAPublicKey)):
        raise ValueError(f"{origin}: unsupported key type {type(key).__name__}")
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(key, "sha256:" + hashlib.sha256(der).hexdigest(), origin)


def load_keys(req: dict) -> list[PublicKey]:
    """The requirement's keys; ValueError naming the bad one."""
    out = []
    for path in ([req["keyPath"]] if "keyPath" in req else req.get("keyPaths") or []):
        try:
            pem = Path(path).read_bytes()
        except OSError as e:
            raise ValueError(f"keyPath {path}: {e.strerror or e}") from None
        out.append(public_key_from_pem(pem, f"keyPath {path}"))
    datas = [req["keyData"]] if "keyData" in req else req.get("keyDatas") or []
    for i, data in enumerate(datas):
        try:
            pem = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"keyData {i}: not base64") from None
        out.append(public_key_from_pem(pem, f"keyData {i}"))
    return out


# ---- signatures in the registry -------------------------------------------------

def signature_tag(digest: str) -> str:
    """`sha256:abc…` -> `sha256-abc….sig`, cosign's tag for its signatures."""
    return digest.replace(":", "-", 1) + ".sig"


@dataclass(frozen=True)
class Signature:
    payload: bytes
    signature: str        # base64, as the annotation holds it
    layer: str            # the layer's digest, for messages


def fetch_signatures(client: SignatureSource, digest: str) -> list[Signature]:
    """The cosign signatures stored for `digest`; PolicyRejected if none."""
    tag = signature_tag(digest)
    try:
        body, _, _ = client.get_manifest(tag)
    except ManifestUnknown:
        raise PolicyRejected(f"no sigstore signature: tag {tag} not found") from None
    try:
        layers = json.loads(body).get("layers") or []
    except (ValueError, AttributeError):
        raise PolicyRejected(f"signature manifest {tag} is not a JSON manifest") from None
    found = [d for d in layers if isinstance(d, dict) and d.get("mediaType") == SIGNATURE_LAYER]
    if not found:
        raise PolicyRejected(f"signature manifest {tag} holds no {SIGNATURE_LAYER} layer")
    if len(found) > MAX_SIGNATURES:
        raise PolicyRejected(f"signature manifest {tag} holds {len(found)} signatures, over "
                             f"the limit of {MAX_SIGNATURES}")
    out = []
    for desc in found:
        layer = str(desc.get("digest", ""))
        try:
            validate_digest(layer, f"signature manifest {tag} layer")
        except InvalidArgument as e:
            raise PolicyRejected(str(e)) from None
        annotation = (desc.get("annotations") or {}).get(SIGNATURE_ANNOTATION, "")
        payload = client.get_blob(layer, MAX_PAYLOAD_BYTES)   # verified against its digest
        out.append(Signature(payload, str(annotation), layer))
    return out


# ---- one signature against one requirement -----------------------------------------

def _explicit(text: str) -> Reference | None:
    """A signature's docker-reference, normalized, keeping "no tag" as no tag."""
    try:
        ref = parse_reference(text, "docker-reference")
    except InvalidArgument:
        return None
    name_part = text.partition("@")[0]
    has_tag = name_part.rfind(":") > name_part.rfind("/")
    if not has_tag and ref.tag:
        ref = Reference(ref.domain, ref.path, "", ref.digest)
    return ref


def identity_matches(identity: dict, image: Reference, signed: Reference) -> bool:
    """containers-policy.json(5) signedIdentity, for the image as pulled."""
    kind = identity.get("type")
    image_full = image.digested(image.digest) if image.digest else image.tagged()
    signed_full = str(signed)
    if kind == "matchExact":
        return signed_full == image_full
    if kind == "matchRepoDigestOrExact":
        return signed.name == image.name if image.digest else signed_full == image_full
    if kind == "matchRepository":
        return signed.name == image.name
    if kind == "exactReference":
        wanted = _explicit(identity["dockerReference"])
        return wanted is not None and signed_full == str(wanted)
    if kind == "exactRepository":
        wanted = _explicit(identity["dockerRepository"])
        return wanted is not None and signed.name == wanted.name
    return False


def _payload_identity(payload: bytes, digest: str) -> Reference:
    """The signed docker-reference; ValueError with the reason the payload
    does not sign `digest`."""
    try:
        critical = json.loads(payload)["critical"]
        kind = critical["type"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        signed_ref = critical["identity"]["docker-reference"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("payload is not a cosign simple-signing document") from None
    if kind != PAYLOAD_TYPE:
        raise ValueError(f"payload type is {kind!r}, not {PAYLOAD_TYPE!r}")
    if signed_digest != digest:
        raise ValueError(f"payload signs manifest {signed_digest}, not the pulled {digest}")
    ref = _explicit(str(signed_ref))
    if ref is None:
        raise ValueError(f"payload docker-reference {signed_ref!r} is not a valid reference")
    return ref


def check_signature(sig: Signature, keys: list[PublicKey], identity: dict, image: Reference,
                    digest: str) -> tuple[PublicKey, Reference]:
    """(key, signed identity) of a signature that satisfies the requirement;
    ValueError with the reason otherwise."""
    try:
        raw = base64.b64decode(sig.signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        raise ValueError(f"no base64 {SIGNATURE_ANNOTATION} annotation")
    key = next((k for k in keys if k.verifies(raw, sig.payload)), None)
    if key is None:
        names = ", ".join(k.fingerprint for k in keys)
        raise ValueError(f"signature does not verify with the policy's key(s) {names}")
    signed = _payload_identity(sig.payload, digest)
    if not identity_matches(identity, image, signed):
        raise ValueError(f"signed identity {signed} does not match {identity['type']} for "
                         f"{image}")
    return key, signed


def verify_requirement(req: dict, client: SignatureSource, image: Reference, digest: str) -> str:
    """The verdict ("verified: …") when a stored signature satisfies `req`;
    PolicyRejected with every signature's reason otherwise."""
    try:
        keys = load_keys(req)
    except ValueError as e:
        raise PolicyRejected(f"cannot load the policy's key: {e}") from None
    identity = req.get("signedIdentity", DEFAULT_IDENTITY)
    reasons = []
    for i, sig in enumerate(fetch_signatures(client, digest)):
        try:
            key, signed = check_signature(sig, keys, identity, image, digest)
        except ValueError as e:
            reasons.append(f"signature {i} ({sig.layer}): {e}")
            continue
        return f"verified: sigstoreSigned key {key.fingerprint} identity {signed}"
    raise PolicyRejected("no signature satisfies it: " + "; ".join(reasons))
