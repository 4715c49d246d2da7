"""Image references in the docker grammar: [domain/]path[:tag][@digest].

Normalization follows Docker's rules: a first component with a '.' or ':'
or equal to "localhost" is a registry host; otherwise the reference is a
short name, which Docker resolves to docker.io (and docker.io's one-part
names live under library/)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from crio_native.errors import InvalidArgument

DOCKER_DOMAIN = "docker.io"
DOCKER_LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[0-9a-f]+$")
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""
    short: bool = False  # the user gave no registry host
    short_path: str = ""  # the path as given, for resolving short names

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_domain(self, domain: str) -> "Reference":
        path = self.short_path or self.path
        if domain == DOCKER_DOMAIN and "/" not in path:
            path = f"library/{path}"
        return Reference(domain, path, self.tag, self.digest, short=False)

    def tagged(self) -> str:
        """name:tag, or "" when pulled by digest only."""
        return f"{self.name}:{self.tag}" if self.tag else ""

    def digested(self, digest: str) -> str:
        return f"{self.name}@{digest}"


def validate_digest(digest: str, what: str = "digest") -> str:
    algo, sep, hexd = digest.partition(":")
    if not sep or algo not in DIGEST_HEX_LENGTH:
        raise InvalidArgument(f"{what}: unsupported digest {digest!r} (want sha256:… or sha512:…)")
    if len(hexd) != DIGEST_HEX_LENGTH[algo] or not _HEX.match(hexd):
        raise InvalidArgument(f"{what}: malformed {algo} digest {digest!r}")
    return digest


def _split_domain(name: str) -> tuple[str, str, bool]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if first in DOCKER_LEGACY_DOMAINS:
            first = DOCKER_DOMAIN
        return first, rest, False
    return DOCKER_DOMAIN, name, True


def parse_reference(text: str, what: str = "image") -> Reference:
    """Parse and normalize; raises InvalidArgument naming `what` on bad input."""
    if not text or text != text.strip():
        raise InvalidArgument(f"{what}: empty or padded image reference {text!r}")
    remainder, _, digest = text.partition("@")
    if digest:
        validate_digest(digest, f"{what} {text!r}")
    tag = ""
    name = remainder
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidArgument(f"{what}: invalid tag {tag!r} in {text!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"{what}: repository name longer than {MAX_NAME_LENGTH} characters")
    domain, path, short = _split_domain(name)
    if not _DOMAIN.match(domain):
        raise InvalidArgument(f"{what}: invalid registry host {domain!r} in {text!r}")
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        raise InvalidArgument(
            f"{what}: invalid repository name {path!r} in {text!r} "
            f"(lowercase letters, digits and . _ - separators)")
    given = path if short else ""
    if domain == DOCKER_DOMAIN and "/" not in path:
        path = f"library/{path}"
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest, short, given)


def looks_like_image_id(text: str) -> bool:
    """A bare config digest or its hex (as `crictl rmi <id>` passes)."""
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    return len(text) == 64 and bool(_HEX.match(text))
