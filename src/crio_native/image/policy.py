"""Signature policy in the containers-policy.json(5) format, for the
`docker` transport.  Supported requirements: insecureAcceptAnything,
reject, and sigstoreSigned with public keys (image/signature.py).  signedBy
(GPG) and sigstoreSigned with Fulcio, Rekor or pki are recognised and
refused with a clear error.  A missing policy file accepts everything (the
daemon logs that it found none).

Every requirement of the matching scope must hold.  `check` runs before any
request (a reject or an unsupported requirement costs no network); the
Verification it returns checks the signatures once the manifest digest is
known, before any layer is fetched."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crio_native.errors import ConfigError
from crio_native.image.errors import PolicyRejected
from crio_native.image.reference import Reference
from crio_native.logsetup import fields

if TYPE_CHECKING:   # signature.py (and `cryptography`) load only for a sigstoreSigned policy
    from crio_native.image.signature import SignatureSource

log = logging.getLogger(__name__)
ACCEPT = "insecureAcceptAnything"
REJECT = "reject"
SIGSTORE = "sigstoreSigned"
KNOWN = (ACCEPT, REJECT, "signedBy", SIGSTORE)
UNVERIFIED = "unverified"   # the verdict when no requirement verified a signature


@dataclass
class Verification:
    """The signature checks one image still needs, once its digest is known."""

    ref: Reference
    what: str                          # "signature policy FILE scope 'S'", for messages
    sigstore: list[dict] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        return bool(self.sigstore)

    def verify(self, client: SignatureSource, digest: str) -> str:
        """The verdict for the image whose (top-level) manifest is `digest`:
        "verified: …" for each sigstoreSigned requirement, UNVERIFIED when
        the policy asked for none; PolicyRejected when one is not met."""
        if not self.sigstore:
            return UNVERIFIED       # and `cryptography` stays unloaded
        from crio_native.image import signature

        verdicts = []
        for req in self.sigstore:
            try:
                verdicts.append(signature.verify_requirement(req, client, self.ref, digest))
            except PolicyRejected as e:
                raise PolicyRejected(f"image {self.ref} ({digest}): rejected by {self.what} "
                                     f"(sigstoreSigned): {e}") from None
        return "; ".join(verdicts) or UNVERIFIED


@dataclass
class Policy:
    default: list[dict] = field(default_factory=lambda: [{"type": ACCEPT}])
    docker: dict[str, list[dict]] = field(default_factory=dict)
    source: str = "built-in default"

    def requirements_for(self, ref: Reference) -> tuple[str, list[dict]]:
        """(scope, requirements) of the most specific matching scope."""
        for scope in _scopes_of(ref):
            if scope in self.docker:
                return scope, self.docker[scope]
        if "" in self.docker:
            return "docker transport default", self.docker[""]
        return "default", self.default

    def verifies_any(self) -> bool:
        """Whether some scope asks for signatures."""
        scopes = [self.default, *self.docker.values()]
        return any(req.get("type") == SIGSTORE for reqs in scopes for req in reqs)

    def check(self, ref: Reference) -> Verification:
        """PolicyRejected now for what needs no registry (reject, unsupported
        requirements); the signature checks left, otherwise."""
        scope, requirements = self.requirements_for(ref)
        out = Verification(ref, f"signature policy {self.source} scope {scope!r}")
        for req in requirements:
            kind = req.get("type")
            if kind == REJECT:
                raise PolicyRejected(f"image {ref}: rejected by signature policy {self.source} "
                                     f"(scope {scope!r}: reject)")
            if kind == SIGSTORE:
                from crio_native.image import signature

                missing = signature.unsupported(req)
                if missing:
                    raise PolicyRejected(f"image {ref}: signature policy {self.source} scope "
                                         f"{scope!r} requires sigstoreSigned with {missing}, "
                                         f"which crio-native does not support")
                out.sigstore.append(req)
            elif kind != ACCEPT:
                raise PolicyRejected(f"image {ref}: signature policy {self.source} scope "
                                     f"{scope!r} requires {kind!r}, which crio-native cannot "
                                     f"verify yet")
        return out


def _scopes_of(ref: Reference) -> list[str]:
    """Most specific first: name:tag or name@digest, the repository, its
    parent namespaces, the host, then *.domain wildcards."""
    out = []
    if ref.digest:
        out.append(ref.digested(ref.digest))
    if ref.tag:
        out.append(f"{ref.name}:{ref.tag}")
    parts = ref.name.split("/")
    out += ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    labels = ref.domain.split(":")[0].split(".")
    out += ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
    return out


def _requirements(raw: object, key: str, source: str) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key, "must be a non-empty list of requirements", source)
    for req in raw:
        if not isinstance(req, dict) or req.get("type") not in KNOWN:
            raise ConfigError(key, f"unknown requirement {req!r}", source)
        if req["type"] == SIGSTORE:
            from crio_native.image import signature

            signature.validate_requirement(req, key, source)
    return raw


def load_policy(path: str) -> Policy:
    p = Path(path)
    if not p.is_file():
        log.debug("no signature policy file; accepting all images", extra=fields(path=path))
        return Policy()
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError("image.signature_policy", f"cannot read: {e}", path) from None
    default = _requirements(doc.get("default"), "default", path)
    scopes = ((doc.get("transports") or {}).get("docker") or {})
    docker = {scope: _requirements(reqs, f"transports.docker.{scope}", path)
              for scope, reqs in scopes.items()}
    return Policy(default, docker, path)
