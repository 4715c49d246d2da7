"""Container root filesystems: an overlay mount of the image's layers (by
their short links) with a per-container upper and work dir, under
<storage>/containers/<id>/{upper,work,merged}.  Removing the rootfs
unmounts it and deletes the directory.  Which image each rootfs uses is
recorded, so an image in use cannot be removed."""
from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from crio_native.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from crio_native.state.files import atomic_write
from crio_native.storage.images import ImageRecord
from crio_native.storage.layers import LayerStore

# The kernel copies mount options into one page.
MAX_MOUNT_OPTIONS = 4095
IMAGE_FILE = "image"

MountFn = Callable[[str, str, str, int, str], None]
UnmountFn = Callable[[str], None]


def _native_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    from crio_native._native import mount as native

    native.mount(source, target, fstype, flags, data)


def _native_unmount(target: str) -> None:
    from crio_native._native import mount as native

    native.unmount(target)


def overlay_options(lowers: list[Path], upper: Path, work: Path, mount_label: str = "") -> str:
    """Options for an overlay mount; `lowers` uppermost first.  With an
    SELinux `mount_label`, every file of the rootfs shows that label (as
    containers/storage mounts CRI-O's), whatever the layer store's own
    labels are: a container's MCS level then covers its whole rootfs."""
    options = f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work}"
    if mount_label:
        options += f',context="{mount_label}"'   # quoted: a level holds commas
    if len(options) > MAX_MOUNT_OPTIONS:
        raise InvalidArgument(f"image has too many layers ({len(lowers)}) for one overlay mount")
    return options


@dataclass(frozen=True)
class RootfsIdmap:
    """A rootfs for a pod with a user namespace (KEP-127): its layers are
    idmapped through the namespace pinned at `userns`, and the upper dir (new
    files, copied-up ones) is owned by the container's root as the host sees
    it, `uid`:`gid`.  The overlay mount itself cannot be idmapped
    (overlayfs does not allow it), but since 5.19 it accepts idmapped
    layers: nothing in the image is chowned."""
    userns: str
    uid: int
    gid: int

    @classmethod
    def of(cls, pins: dict[str, str], uids: list[list[int]],
           gids: list[list[int]]) -> "RootfsIdmap | None":
        """From a pod record's pins and mappings; None without a user namespace."""
        if "user" not in pins or not uids or not gids:
            return None
        return cls(pins["user"], _host_root(uids), _host_root(gids))


def _host_root(maps: list[list[int]]) -> int:
    for inside, outside, size in maps:
        if inside <= 0 < inside + size:
            return outside
    raise InvalidArgument("user namespace mappings leave the container's root unmapped")


def _idmapped_layers(lowers: list[Path], idmap: RootfsIdmap) -> list[int]:
    from crio_native._native import mount as native

    fds: list[int] = []
    try:
        for lower in lowers:
            try:
                fds.append(native.idmapped_tree(str(lower), idmap.userns))
            except OSError as e:
                raise FailedPrecondition(
                    f"CreateContainer: rootfs: layer {lower} cannot be idmapped for the pod's "
                    f"user namespace (its filesystem must support idmapped mounts): {e}") from e
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


class RootfsStore:
    def __init__(self, root: Path, layers: LayerStore, mount: MountFn = _native_mount,
                 unmount: UnmountFn = _native_unmount):
        self.root = root
        self.layers = layers
        self._mount = mount
        self._unmount = unmount
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidArgument(f"rootfs: bad container id {container_id!r}")
        return self.root / container_id

    def create(self, container_id: str, image: ImageRecord, mount_label: str = "",
               idmap: RootfsIdmap | None = None) -> Path:
        """Mount the container's rootfs and return the merged directory."""
        d = self.path(container_id)
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f"rootfs for container {container_id} exists") from None
        try:
            # not fsynced: a power loss that empties it only lets RemoveImage
            # take an image an exited container was made from (docs/recovery.md)
            atomic_write(d / IMAGE_FILE, image.id.encode(), mode=0o644, durable=False)
            for sub in ("upper", "work", "merged"):
                (d / sub).mkdir(mode=0o755)
            lowers = [self.layers.short_link(c) for c in reversed(image.layers)]
            if idmap is None:
                options = overlay_options(lowers, d / "upper", d / "work", mount_label)
                self._mount("overlay", str(d / "merged"), "overlay", 0, options)
            else:
                self._mount_idmapped(d, lowers, mount_label, idmap)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return d / "merged"

    def _mount_idmapped(self, d: Path, lowers: list[Path], mount_label: str,
                        idmap: RootfsIdmap) -> None:
        os.chown(d / "upper", idmap.uid, idmap.gid)
        fds = _idmapped_layers(lowers, idmap)
        try:
            # the detached layer mounts, by fd: overlay takes its own clones
            paths = [Path(f"/proc/self/fd/{fd}") for fd in fds]
            options = overlay_options(paths, d / "upper", d / "work", mount_label)
            self._mount("overlay", str(d / "merged"), "overlay", 0, options)
        finally:
            for fd in fds:
                os.close(fd)

    def remove(self, container_id: str) -> None:
        """Unmount and delete; a rootfs that is already gone is fine."""
        d = self.path(container_id)
        if not d.exists():
            return
        if os.path.ismount(d / "merged"):
            self._unmount(str(d / "merged"))
        shutil.rmtree(d)

    def unmount(self, container_id: str) -> None:
        """A stopped container's rootfs: unmount it and remove what only
        the mount used (the work dir, the mount point); the upper dir and
        the image file stay until remove().  Nothing mounted, or no rootfs
        at all, is fine."""
        d = self.path(container_id)
        if os.path.ismount(d / "merged"):
            self._unmount(str(d / "merged"))
        shutil.rmtree(d / "work", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (d / "merged").rmdir()

    def users_of(self, image_id: str) -> list[str]:
        """IDs of containers whose rootfs is made from `image_id`."""
        out = []
        for d in sorted(self.root.iterdir()):
            try:
                if (d / IMAGE_FILE).read_text() == image_id:
                    out.append(d.name)
            except FileNotFoundError:
                continue
        return out
