"""The image service behind the CRI ImageService RPCs, as a Python API:
pull, look up, list, remove and measure images in one store."""
from __future__ import annotations

import fnmatch
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from crio_native.config.sections import Config
from crio_native.errors import ConfigError, FailedPrecondition, InvalidArgument, NotFound
from crio_native.image.policy import UNVERIFIED
from crio_native.image.reference import parse_reference
from crio_native.image.registries import load_registries
from crio_native.storage.images import ImageRecord
from crio_native.storage.rootfs import RootfsIdmap, RootfsStore
from crio_native.storage.store import ImageStore

if TYPE_CHECKING:   # the puller (urllib3, zstandard, isal, tarfile) is loaded at the first pull
    from crio_native.image.distribution import Credentials
    from crio_native.image.pull import Puller

STORAGE_DIR = "storage"


@dataclass
class ImageUser:
    uid: int | None
    username: str


def user_of(user: str) -> ImageUser:
    """The image USER as CRI wants it: a numeric uid, or a name to resolve later."""
    name = user.split(":", 1)[0]
    if not name:
        return ImageUser(0, "")
    if name.isdigit():
        return ImageUser(int(name), "")
    return ImageUser(None, name)


def rootfs_root(config: Config) -> Path:
    """Where the containers' rootfs dirs lie, one per container id."""
    return Path(config.root) / STORAGE_DIR / "containers"


class ImageService:
    def __init__(self, config: Config):
        self.config = config
        self.store = ImageStore(Path(config.root) / STORAGE_DIR)
        self._puller: Puller | None = None
        self._puller_lock = threading.Lock()
        self.rootfs = RootfsStore(rootfs_root(config), self.store.layers)
        # Containers whose rootfs is made from an image: RemoveImage refuses those.
        self.users_of_image: Callable[[str], list[str]] = self.rootfs.users_of

    @property
    def puller(self) -> Puller:
        with self._puller_lock:
            if self._puller is None:
                from crio_native.image.pull import Puller
                self._puller = Puller(self.store, self.config.image)
            return self._puller

    def close(self) -> None:
        if self._puller is not None:
            self._puller.close()

    def pull(self, image: str, credentials: Credentials | None = None) -> ImageRecord:
        if not image:
            raise InvalidArgument("PullImage: image.image: empty image reference")
        return self.puller.pull(image, credentials)

    def get(self, name: str) -> ImageRecord | None:
        if not name:
            raise InvalidArgument("image.image: empty image reference")
        record = self.store.lookup(name) or self._lookup_short_name(name)
        if record is not None and not self.store.has_layers(record):
            return None
        return record

    def _lookup_short_name(self, name: str) -> ImageRecord | None:
        """A short name as pulled through an alias or the search registries:
        the first that is present locally wins (no ambiguity check, since
        nothing is fetched)."""
        try:
            ref = parse_reference(name)
        except InvalidArgument:
            return None
        if not ref.short:
            return None
        try:
            conf = load_registries(self.config.image)
            names = conf.candidates(ref) if ref.short_path in conf.aliases else []
        except (ConfigError, InvalidArgument):
            return None
        names += [ref.with_domain(domain) for domain in conf.search]
        for candidate in names:
            record = self.store.lookup(str(candidate))
            if record is not None:
                return record
        return None

    def list(self, name: str = "") -> list[ImageRecord]:
        if name:
            record = self.get(name)
            return [record] if record else []
        return [r for r in self.store.images.all() if self.store.has_layers(r)]

    def remove(self, name: str) -> ImageRecord | None:
        """Remove the image (every tag); None if there was none, as CRI wants
        RemoveImage to be idempotent."""
        if not name:
            raise InvalidArgument("RemoveImage: image.image: empty image reference")
        with self.store.lock:
            record = self.store.lookup(name)
            if record is None:
                return None
            users = self.users_of_image(record.id)
            if users:
                raise FailedPrecondition(f"RemoveImage: image {name} ({record.id}) is in use "
                                         f"by container(s) {', '.join(users)}")
            self.store.remove_image(record)
            return record

    def create_rootfs(self, container_id: str, image: str, mount_label: str = "",
                      idmap: RootfsIdmap | None = None) -> Path:
        """Mount a container's overlay rootfs from `image` (with the SELinux
        `mount_label`, if any; with idmapped layers for a pod with a user
        namespace); returns its path."""
        with self.store.lock:  # so RemoveImage cannot slip in between
            record = lookup_or_not_found(self, image, "CreateContainer: config.image.image")
            merged = self.rootfs.create(container_id, record, mount_label, idmap)
        self.store.invalidate_usage()
        return merged

    def remove_rootfs(self, container_id: str) -> None:
        self.rootfs.remove(container_id)
        self.store.invalidate_usage()

    def unmount_rootfs(self, container_id: str) -> None:
        """A stopped container's rootfs: unmounted, its dirs kept until
        remove_rootfs (the upper dir is the writable layer the stats report)."""
        self.rootfs.unmount(container_id)

    def pinned(self, record: ImageRecord) -> bool:
        patterns = [self.config.image.pause_image, *self.config.image.pinned_images]
        names = [record.id, *record.repo_tags, *record.repo_digests]
        for pattern in patterns:
            normalized = _normalize_pattern(pattern)
            if any(fnmatch.fnmatchcase(n, normalized) for n in names):
                return True
        return False

    def signature_of(self, image_id: str) -> str:
        """The signature policy's verdict kept with the image at its pull;
        "unverified" for one pulled before verdicts were kept or gone."""
        record = self.store.images.get(image_id) if image_id.startswith("sha256:") else None
        return record.signature if record is not None else UNVERIFIED

    def verbose_info(self, record: ImageRecord) -> dict[str, str]:
        config = json.loads(self.store.content.get(record.config_digest))
        info = {"id": record.id, "manifestDigest": record.manifest_digest,
                "layers": record.layers, "imageSpec": config,
                "signature": record.signature}   # the signature policy's verdict at the pull
        return {"info": json.dumps(info, sort_keys=True)}

    def fs_usage(self) -> tuple[str, int, int]:
        """(mountpoint, bytes used, inodes used) of the image store."""
        used, inodes = self.store.usage()
        return str(self.store.root), used, inodes


def _normalize_pattern(pattern: str) -> str:
    """Pinned-image patterns are references, optionally ending in '*'."""
    glob = pattern.endswith("*")
    base = pattern.rstrip("*")
    try:
        ref = parse_reference(base) if base else None
    except InvalidArgument:
        return pattern
    if ref is None:
        return "*"
    if glob:
        return (ref.name if "/" in base else base) + "*"
    return str(ref)


def lookup_or_not_found(images: ImageService, name: str, rpc: str) -> ImageRecord:
    record = images.get(name)
    if record is None:
        raise NotFound(f"{rpc}: image {name!r} not found")
    return record
