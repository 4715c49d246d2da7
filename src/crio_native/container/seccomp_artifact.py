"""A seccomp profile pulled as an OCI artifact: what CRI-O does with a
`seccomp-profile.kubernetes.cri-o.io` annotation whose value is an image
reference (internal/config/seccomp/seccompociartifact).  The artifact's
manifest is fetched like an image's (registries.conf candidates and
mirrors, the signature policy, the auth file, the certs dir), and its first
layer blob, at most 1 MiB as CRI-O allows, verified by digest, is the
profile's JSON.  Fetched at each CreateContainer that uses it (CRI-O keeps
the artifact in its store)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crio_native.config.sections import ImageConfig, parse_duration
from crio_native.errors import ConfigError, CrioNativeError, FailedPrecondition
from crio_native.image.manifest import host, load_json, select_platform
from crio_native.image.reference import parse_reference
from crio_native.image.registries import load_registries
from crio_native.logsetup import fields

if TYPE_CHECKING:   # the registry client (urllib3) is loaded at the first fetch
    from crio_native.image.registries import Source

log = logging.getLogger(__name__)

MAX_PROFILE_BYTES = 1024 * 1024


def fetch_profile(reference: str, config: ImageConfig) -> bytes:
    """The profile bytes of the artifact `reference`; FailedPrecondition
    naming it when no source has it."""
    from crio_native.image.policy import load_policy

    what = f"seccomp profile artifact {reference}"
    ref = parse_reference(reference, what)
    try:
        registries = load_registries(config)
        policy = load_policy(config.signature_policy)
    except ConfigError as e:
        raise FailedPrecondition(f"pulling {what}: {e}") from e
    failures: list[str] = []
    for candidate in registries.candidates(ref):
        policy.check(candidate)
        for source in registries.sources(candidate):
            try:
                return _fetch_from(source, candidate.object, config, what)
            except CrioNativeError as e:
                log.info("seccomp artifact: source failed", extra=fields(
                    artifact=reference, source=str(source), error=str(e)))
                failures.append(f"{source}: {e}")
    raise FailedPrecondition(f"pulling {what}: " + "; ".join(failures or ["no source"]))


def _fetch_from(source: Source, obj: str, config: ImageConfig, what: str) -> bytes:
    from crio_native.image.auth_file import credentials_from_file
    from crio_native.image.distribution import INDEX_TYPES, RegistryClient

    credentials = credentials_from_file(config.auth_file, source) if config.auth_file else None
    client = RegistryClient(source, credentials,
                            parse_duration(config.pull_progress_timeout) or 300.0,
                            config.registry_certs_dir)
    body, media_type, _digest = client.get_manifest(obj)
    doc = load_json(body, what)
    if media_type in INDEX_TYPES or "manifests" in doc:
        body, _type, _digest = client.get_manifest(select_platform(doc, host(), what).digest)
        doc = load_json(body, what)
    layers = doc.get("layers") or doc.get("blobs") or []
    if not layers or not isinstance(layers[0], dict) or not layers[0].get("digest"):
        raise FailedPrecondition(f"{what}: the artifact has no layer to read the profile from")
    first = layers[0]
    if int(first.get("size") or 0) > MAX_PROFILE_BYTES:
        raise FailedPrecondition(f"{what}: {first.get('size')} bytes is over the "
                                 f"{MAX_PROFILE_BYTES} bytes allowed")
    return client.get_blob(str(first["digest"]), MAX_PROFILE_BYTES)
