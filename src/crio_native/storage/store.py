"""The image store: content, layers and image records under <root>/storage,
with lookups by ID, tag or digest, tag moves, and garbage collection of
layers and blobs no image needs any more."""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from crio_native.errors import InvalidArgument
from crio_native.image.reference import looks_like_image_id, parse_reference
from crio_native.storage.content import ContentStore
from crio_native.storage.images import ImageRecord, ImageRecords
from crio_native.storage.layers import LayerStore


USAGE_TTL = 10.0


class ImageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.content = ContentStore(self.root / "blobs")
        self.layers = LayerStore(self.root / "layers")
        self.images = ImageRecords(self.root / "images")
        self.lock = threading.RLock()
        self._busy_layers: Counter[str] = Counter()
        self._usage_cache: tuple[float, tuple[int, int]] | None = None
        self.collect_orphans()

    def collect_orphans(self) -> None:
        """Drop layers and blobs no image record names: what a pull or a
        removal interrupted by a crash left.  Run at open, before any pull."""
        with self.lock:
            records = self.images.all()
            used_layers = {c for r in records for c in r.layers} | set(self._busy_layers)
            for chain_id in self.layers.all():
                if chain_id not in used_layers:
                    self.layers.remove(chain_id)
            used_blobs = _blobs_of(records)
            for digest in self.content.all():
                if digest not in used_blobs:
                    self.content.delete(digest)

    # ---- lookups -----------------------------------------------------------

    def lookup(self, name: str) -> ImageRecord | None:
        """An image by ID (with or without sha256:), name:tag or name@digest."""
        if looks_like_image_id(name):
            image_id = name if name.startswith("sha256:") else f"sha256:{name}"
            record = self.images.get(image_id)
            if record is not None:
                return record
        try:
            ref = parse_reference(name)
        except InvalidArgument:
            return None
        records = self.images.all()
        if ref.digest:
            wanted = ref.digested(ref.digest)
            return next((r for r in records if wanted in r.repo_digests), None)
        wanted = ref.tagged()
        return next((r for r in records if wanted in r.repo_tags), None)

    def has_layers(self, record: ImageRecord) -> bool:
        return all(self.layers.exists(c) for c in record.layers)

    # ---- updates -----------------------------------------------------------

    def add_image(self, record: ImageRecord) -> ImageRecord:
        """Save `record`, merging with an existing record of the same ID and
        taking its tags away from any other image."""
        with self.lock:
            existing = self.images.get(record.id)
            if existing is not None:
                record.repo_tags = _union(existing.repo_tags, record.repo_tags)
                record.repo_digests = _union(existing.repo_digests, record.repo_digests)
            for other in self.images.all():
                if other.id != record.id and set(other.repo_tags) & set(record.repo_tags):
                    other.repo_tags = [t for t in other.repo_tags if t not in record.repo_tags]
                    self.images.save(other)
            self.images.save(record)
            self.invalidate_usage()
            return record

    def remove_image(self, record: ImageRecord) -> None:
        """Forget the image (all its tags) and free what no other image uses."""
        with self.lock:
            self.images.delete(record.id)
            self._collect(record)
            self.invalidate_usage()

    def _collect(self, removed: ImageRecord) -> None:
        remaining = self.images.all()
        used_layers = {c for r in remaining for c in r.layers} | set(self._busy_layers)
        for chain_id in removed.layers:
            if chain_id not in used_layers:
                self.layers.remove(chain_id)
        for digest in _blobs_of([removed]) - _blobs_of(remaining):
            self.content.delete(digest)

    def remove_orphan_layers(self, chain_ids: list[str]) -> None:
        """After a failed pull: drop the layers it committed that no image uses."""
        with self.lock:
            used = {c for r in self.images.all() for c in r.layers} | set(self._busy_layers)
            for chain_id in chain_ids:
                if chain_id not in used:
                    self.layers.remove(chain_id)
            self.invalidate_usage()

    @contextmanager
    def layers_in_use(self, chain_ids: list[str]) -> Iterator[None]:
        """Keep these layers from garbage collection while a pull assembles an image."""
        with self.lock:
            self._busy_layers.update(chain_ids)
        try:
            yield
        finally:
            with self.lock:
                self._busy_layers.subtract(chain_ids)
                self._busy_layers += Counter()  # drop zero counts

    # ---- usage -------------------------------------------------------------

    def invalidate_usage(self) -> None:
        self._usage_cache = None

    def usage(self) -> tuple[int, int]:
        """(bytes, inodes) used under the store.  The kubelet asks every few
        seconds and a walk of a big store is slow, so a result is reused for
        USAGE_TTL seconds unless an image was added or removed meanwhile."""
        cached = self._usage_cache
        if cached is not None and time.monotonic() - cached[0] < USAGE_TTL:
            return cached[1]
        result = self._walk_usage()
        self._usage_cache = (time.monotonic(), result)
        return result

    def _walk_usage(self) -> tuple[int, int]:
        """Allocated bytes and inodes, counting hardlinked inodes once."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    total += st.st_blocks * 512
        return total, len(seen)


def _blobs_of(records: list[ImageRecord]) -> set[str]:
    """Digests of the manifests, indexes and configs these images keep."""
    out = {d for r in records for d in (r.manifest_digest, r.config_digest)}
    return out | {d.rsplit("@", 1)[1] for r in records for d in r.repo_digests}


def _union(a: list[str], b: list[str]) -> list[str]:
    return a + [x for x in b if x not in a]
