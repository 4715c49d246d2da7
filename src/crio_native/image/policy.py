"""Signature policy in the containers-policy.json(5) format, for the
`docker` transport.  Supported requirements: insecureAcceptAnything and
reject.  signedBy and sigstoreSigned are recognised and refused with a
clear error, since signatures are not verified yet.  A missing policy file
accepts everything (the daemon logs that it found none)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from crio_native.errors import ConfigError
from crio_native.image.errors import PolicyRejected
from crio_native.image.reference import Reference
from crio_native.logsetup import fields

log = logging.getLogger(__name__)
ACCEPT = "insecureAcceptAnything"
REJECT = "reject"
KNOWN = (ACCEPT, REJECT, "signedBy", "sigstoreSigned")


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

    def check(self, ref: Reference) -> None:
        scope, requirements = self.requirements_for(ref)
        for req in requirements:
            kind = req.get("type")
            if kind == REJECT:
                raise PolicyRejected(f"image {ref}: rejected by signature policy {self.source} "
                                     f"(scope {scope!r}: reject)")
            if kind != ACCEPT:
                raise PolicyRejected(f"image {ref}: signature policy {self.source} scope "
                                     f"{scope!r} requires {kind!r}, which crio-native cannot "
                                     f"verify yet")


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
