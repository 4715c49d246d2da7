"""Pulling an image: resolve the name, check the signature policy, try each
source (mirrors, then origin), fetch manifest and config, make every layer
present, then record the image.

Concurrent pulls of the same reference share one pull, and concurrent
needs for the same layer share one download.  A digest reference already in
the store returns without touching the network; a tag is re-resolved (one
manifest GET) and returns at once when its image is complete."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from crio_native.config.sections import ImageConfig, parse_duration
from crio_native.errors import ConfigError, CrioNativeError, FailedPrecondition
from crio_native.image.auth_file import credentials_from_file
from crio_native.image.distribution import INDEX_TYPES, Credentials, RegistryClient
from crio_native.image.errors import ContentMismatch, PolicyRejected, UnsafeLayer
from crio_native.image.layer_fetch import LayerJob, fetch_layer
from crio_native.image.manifest import (ImageManifest, Platform, diff_ids_of, host, load_json,
                                        parse_manifest, select_platform)
from crio_native.image.policy import UNVERIFIED, Verification, load_policy
from crio_native.image.reference import Reference, parse_reference
from crio_native.image.registries import Source, load_registries
from crio_native.logsetup import fields
from crio_native.metrics import hooks as metrics_hooks
from crio_native import tracing
from crio_native.storage.images import ImageRecord
from crio_native.storage.layers import chain_ids
from crio_native.storage.store import ImageStore

log = logging.getLogger(__name__)
MAX_CONFIG_BYTES = 8 * 1024 * 1024
# Errors that trying another source cannot fix.
FINAL_ERRORS = (PolicyRejected, UnsafeLayer)


@dataclass
class ResolvedImage:
    """What a pull learnt from the registry before fetching layers."""

    ref: Reference
    what: str                 # "image X from SOURCE", for messages
    top_digest: str           # what the tag points at (an index or a manifest)
    manifest_digest: str      # the platform's manifest
    manifest: ImageManifest
    config: dict
    blobs: dict[str, bytes]   # verified manifests and config, stored with the image
    diff_ids: list[str]
    chains: list[str]
    signature: str = UNVERIFIED   # the signature policy's verdict (image/policy.py)


class Puller:
    def __init__(self, store: ImageStore, config: ImageConfig, platform: Platform | None = None):
        self.store = store
        self.config = config
        self.platform = platform or host()
        self.progress_timeout = parse_duration(config.pull_progress_timeout) or 300.0
        store.layers.sync = config.sync_layers
        self._lock = threading.Lock()
        self._images: dict[str, Future] = {}
        self._layers: dict[str, Future] = {}
        self._downloads = ThreadPoolExecutor(config.max_concurrent_downloads,
                                             thread_name_prefix="layer-pull")

    def close(self) -> None:
        self._downloads.shutdown(wait=True, cancel_futures=True)

    # ---- entry point ---------------------------------------------------------

    def pull(self, image: str, credentials: Credentials | None = None) -> ImageRecord:
        """Pull `image` (any reference form); returns the stored record."""
        ref = parse_reference(image, "image.image")
        if ref.digest and not self._must_verify(ref):
            present = self.store.lookup(image)
            if present is not None and self.store.has_layers(present):
                return present
        # Callers with other credentials do not share a pull: each must be let in.
        key = f"{ref}|{hash(credentials)}"
        with self._lock:
            future = self._images.get(key)
            owner = future is None
            if owner:
                future = self._images[key] = Future()
        assert future is not None
        if not owner:
            return future.result()
        metrics, started = metrics_hooks.current, time.monotonic()
        if metrics is not None:
            metrics.observe_pull_started()
        try:
            with tracing.span("image.pull", **{"image.name": str(ref)}):
                record = self._pull_candidates(ref, credentials)
            future.set_result(record)
            if metrics is not None:
                metrics.observe_pull_done(time.monotonic() - started, None)
            return record
        except BaseException as e:
            future.set_exception(e)
            if metrics is not None:
                from crio_native.metrics.pull_failure import pull_failure_reason
                metrics.observe_pull_done(time.monotonic() - started, pull_failure_reason(e))
            raise
        finally:
            with self._lock:
                del self._images[key]

    def _pull_candidates(self, ref: Reference, credentials: Credentials | None) -> ImageRecord:
        try:
            registries = load_registries(self.config)
            policy = load_policy(self.config.signature_policy)
        except ConfigError as e:
            raise FailedPrecondition(f"pulling {ref}: {e}") from e
        failures: list[str] = []
        last: CrioNativeError | None = None
        for candidate in registries.candidates(ref):
            verification = policy.check(candidate)
            for source in registries.sources(candidate):
                try:
                    return self._pull_from(source, candidate, credentials, verification)
                except FINAL_ERRORS:
                    raise
                except CrioNativeError as e:
                    log.info("pull from source failed", extra=fields(
                        image=str(candidate), source=str(source), error=str(e)))
                    failures.append(f"{source}: {e}")
                    last = e
        assert last is not None
        if len(failures) == 1:
            raise last
        raise type(last)(f"pulling {ref}: every source failed: " + "; ".join(failures)) from last

    # ---- one source ---------------------------------------------------------

    def _must_verify(self, ref: Reference) -> bool:
        """Whether the policy wants signatures checked for `ref`: then even a
        stored digest goes to the registry (a policy may have changed since)."""
        try:
            policy = load_policy(self.config.signature_policy)
            # a short name may resolve to any registry: any sigstore scope counts
            return policy.check(ref).needed or (ref.short and policy.verifies_any())
        except (ConfigError, PolicyRejected):
            return True   # the full pull reports it

    def _pull_from(self, source: Source, ref: Reference, credentials: Credentials | None,
                   verification: Verification) -> ImageRecord:
        if source.mirror or credentials is None:
            # CRI credentials are for the image's own registry, never sent to a mirror.
            credentials = credentials_from_file(self.config.auth_file, source)
        client = RegistryClient(source, credentials, self.progress_timeout,
                                self.config.registry_certs_dir)
        image = self._resolve(client, ref, f"image {ref} from {source}")
        # before any layer: what the tag resolved to is what is signed
        image.signature = verification.verify(client, image.top_digest)
        try:
            return self._assemble(client, image)
        except BaseException:
            # Nothing of a failed pull stays visible, not even its verified layers.
            self.store.remove_orphan_layers(image.chains)
            raise

    def _resolve(self, client: RegistryClient, ref: Reference, what: str) -> ResolvedImage:
        """Manifest (through an index if need be) and config, verified."""
        body, media_type, top_digest = client.get_manifest(ref.object)
        blobs = {top_digest: body}
        manifest_digest = top_digest
        if media_type in INDEX_TYPES or "manifests" in load_json(body, what):
            desc = select_platform(load_json(body, what), self.platform, what)
            body, media_type, manifest_digest = client.get_manifest(desc.digest)
            blobs[manifest_digest] = body
        manifest = parse_manifest(load_json(body, what), what)
        config_bytes = self._config(client, manifest.config.digest, manifest.config.size, what)
        blobs[manifest.config.digest] = config_bytes
        config = load_json(config_bytes, f"{what} config")
        diff_ids = diff_ids_of(config, len(manifest.layers), what)
        return ResolvedImage(ref, what, top_digest, manifest_digest, manifest, config, blobs,
                             diff_ids, chain_ids(diff_ids))

    def _assemble(self, client: RegistryClient, image: ResolvedImage) -> ImageRecord:
        """Make every layer present, then store the blobs and the record."""
        ref, chains, manifest = image.ref, image.chains, image.manifest
        with self.store.layers_in_use(chains):
            self._ensure_layers(client, [
                LayerJob(d, image.diff_ids[i], chains[i], chains[i - 1] if i else "",
                         f"{image.what}: layer {i} ({d.digest})")
                for i, d in enumerate(manifest.layers)])
            for digest, data in image.blobs.items():
                self.store.content.put(digest, data)
            record = ImageRecord(
                id=manifest.config.digest, manifest_digest=image.manifest_digest,
                config_digest=manifest.config.digest, layers=chains,
                size=manifest.config.size + sum(d.size for d in manifest.layers),
                repo_tags=[ref.tagged()] if ref.tag else [],
                repo_digests=[ref.digested(image.top_digest)],
                user=str((image.config.get("config") or {}).get("User") or ""),
                pulled_at=time.time(), signature=image.signature)
            return self.store.add_image(record)

    def _config(self, client: RegistryClient, digest: str, size: int, what: str) -> bytes:
        if self.store.content.has(digest):
            return self.store.content.get(digest)
        if size > MAX_CONFIG_BYTES:
            raise ContentMismatch(f"{what}: config of {size} bytes is too large")
        data = client.get_blob(digest, MAX_CONFIG_BYTES)
        if len(data) != size:
            raise ContentMismatch(f"{what}: config is {len(data)} bytes, manifest says {size}")
        return data

    def _ensure_layers(self, client: RegistryClient, jobs: list[LayerJob]) -> None:
        """Start (or join) a download for each missing layer, then wait for all."""
        waits = []
        with self._lock:
            for job in jobs:
                if self.store.layers.exists(job.chain_id):
                    continue
                future = self._layers.get(job.chain_id)
                if future is None:
                    future = self._downloads.submit(tracing.in_context(self._download),
                                                    client, job)
                    self._layers[job.chain_id] = future
                waits.append(future)
        errors = [f.exception() for f in waits]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def _download(self, client: RegistryClient, job: LayerJob) -> None:
        try:
            if not self.store.layers.exists(job.chain_id):
                with tracing.span("image.layer", **{"image.layer.digest": job.descriptor.digest,
                                                    "image.layer.size": job.descriptor.size}):
                    fetch_layer(client, self.store.layers, job)
                if metrics_hooks.current is not None:
                    metrics_hooks.current.observe_layer(job.descriptor.size)
        finally:
            with self._lock:
                self._layers.pop(job.chain_id, None)
