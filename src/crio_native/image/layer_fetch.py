"""Download, verify and unpack one layer in a single streaming pass:
HTTP → digest of the compressed bytes → decompress → diffID → tar unpack.
Both digests and the size are checked at the end; only then is the staged
layer renamed into place."""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from crio_native.errors import ResourceExhausted
from crio_native.image.distribution import RegistryClient
from crio_native.image.errors import ContentMismatch, RegistryUnavailable
from crio_native.image.manifest import Descriptor
from crio_native.logsetup import fields
from crio_native.storage.layers import LayerRecord, LayerStore
from crio_native.storage.streams import (DECOMPRESS_ERRORS, ChunkReader, HashingReader,
                                         TarStream, compression_of, decompressed)
from crio_native.storage.unpack import unpack_layer

log = logging.getLogger(__name__)
STREAM_ATTEMPTS = 2


@dataclass(frozen=True)
class LayerJob:
    descriptor: Descriptor
    diff_id: str
    chain_id: str
    parent: str
    what: str  # "image X layer N (digest)" for messages


def fetch_layer(client: RegistryClient, layers: LayerStore, job: LayerJob) -> None:
    """Make job.chain_id present in `layers`, retrying a stream that broke midway."""
    for attempt in range(STREAM_ATTEMPTS):
        try:
            _fetch_once(client, layers, job)
            return
        except RegistryUnavailable as e:
            if attempt == STREAM_ATTEMPTS - 1:
                raise
            log.info("layer download broke, starting over",
                     extra=fields(layer=job.descriptor.digest, error=str(e)))


def _fetch_once(client: RegistryClient, layers: LayerStore, job: LayerJob) -> None:
    desc = job.descriptor
    staged = layers.new_staging()
    try:
        raw = ChunkReader(iter(client.blob_chunks(desc.digest)))
        compressed = HashingReader(raw, desc.digest.split(":", 1)[0])
        tar = TarStream(decompressed(compressed, compression_of(raw.peek(4))))
        try:
            size = unpack_layer(tar, str(staged / "diff"), job.what)
            tar.drain()
            compressed.drain()
        except DECOMPRESS_ERRORS as e:
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ResourceExhausted(f"{job.what}: cannot unpack: {e}") from e
            _verify(job, compressed, None)  # a bad digest explains a broken stream best
            raise ContentMismatch(f"{job.what}: cannot unpack: {e}") from e
        _verify(job, compressed, tar)
        layers.commit(staged, LayerRecord(job.chain_id, job.diff_id, job.parent, desc.digest,
                                          desc.size, size))
    except BaseException:
        layers.discard(staged)
        raise


def _verify(job: LayerJob, compressed: HashingReader, tar: TarStream | None) -> None:
    desc = job.descriptor
    compressed.drain()
    if compressed.size != desc.size:
        raise ContentMismatch(f"{job.what}: size {compressed.size} does not match the "
                              f"manifest's {desc.size}")
    if compressed.digest != desc.digest:
        raise ContentMismatch(f"{job.what}: content digest {compressed.digest} does not "
                              f"match {desc.digest}")
    if tar is not None and tar.digest != job.diff_id:
        raise ContentMismatch(f"{job.what}: uncompressed digest {tar.digest} does not match "
                              f"the config's diff_id {job.diff_id}")
