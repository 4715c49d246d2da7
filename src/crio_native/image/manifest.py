"""Parsing of image manifests, indexes and configs, and platform selection."""
from __future__ import annotations

import json
import platform as host_platform
from dataclasses import dataclass

from crio_native.errors import InvalidArgument
from crio_native.image.errors import ContentMismatch, ManifestUnknown
from crio_native.image.reference import validate_digest

_ARCH = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"),
         "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host() -> Platform:
    arch, variant = _ARCH.get(host_platform.machine(), (host_platform.machine(), ""))
    return Platform("linux", arch, variant)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


def _descriptor(raw: dict, what: str) -> Descriptor:
    try:
        digest = validate_digest(str(raw["digest"]), what)
        size = int(raw["size"])
    except (KeyError, TypeError, ValueError, InvalidArgument) as e:
        raise ContentMismatch(f"{what}: malformed descriptor: {e}") from None
    if size < 0:
        raise ContentMismatch(f"{what}: negative size")
    return Descriptor(str(raw.get("mediaType", "")), digest, size)


def load_json(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise ContentMismatch(f"{what}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ContentMismatch(f"{what}: not a JSON object")
    return doc


def select_platform(index: dict, want: Platform, what: str) -> Descriptor:
    """The index entry for `want`; a variant is matched when both sides name one."""
    for raw in index.get("manifests", []):
        p = raw.get("platform") or {}
        if p.get("os") != want.os or p.get("architecture") != want.architecture:
            continue
        if want.variant and p.get("variant") and p["variant"] != want.variant:
            continue
        return _descriptor(raw, what)
    offered = ", ".join(str(Platform(p.get("os", "?"), p.get("architecture", "?"),
                                     p.get("variant", "")))
                        for p in (m.get("platform") or {} for m in index.get("manifests", [])))
    raise ManifestUnknown(f"{what}: no manifest for platform {want} (index offers: "
                          f"{offered or 'nothing'})")


@dataclass
class ImageManifest:
    config: Descriptor
    layers: list[Descriptor]


def parse_manifest(doc: dict, what: str) -> ImageManifest:
    if doc.get("schemaVersion") != 2:
        raise ContentMismatch(f"{what}: unsupported manifest schemaVersion "
                              f"{doc.get('schemaVersion')!r}")
    if "config" not in doc or not isinstance(doc.get("layers"), list):
        raise ContentMismatch(f"{what}: manifest lacks config or layers")
    return ImageManifest(_descriptor(doc["config"], f"{what} config"),
                         [_descriptor(d, f"{what} layer {i}") for i, d in enumerate(doc["layers"])])


def diff_ids_of(config: dict, layer_count: int, what: str) -> list[str]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != layer_count:
        raise ContentMismatch(f"{what}: config rootfs.diff_ids has "
                              f"{len(diff_ids) if isinstance(diff_ids, list) else 'no'} entries "
                              f"for {layer_count} layers")
    try:
        return [validate_digest(str(d), f"{what} rootfs.diff_ids") for d in diff_ids]
    except InvalidArgument as e:
        raise ContentMismatch(str(e)) from None
