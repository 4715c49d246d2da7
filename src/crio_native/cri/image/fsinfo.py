"""ImageFsInfo: usage of the image store.  Container writable layers live
on the same filesystem, so the container filesystem is reported as the
same one (the kubelet then treats the image filesystem as not split)."""
from __future__ import annotations

import time

from crio_native._proto import api_pb2
from crio_native.image.service import ImageService


def image_fs_info(images: ImageService, request: api_pb2.ImageFsInfoRequest
                  ) -> api_pb2.ImageFsInfoResponse:
    mountpoint, used, inodes = images.fs_usage()
    usage = api_pb2.FilesystemUsage(
        timestamp=time.time_ns(), fs_id=api_pb2.FilesystemIdentifier(mountpoint=mountpoint),
        used_bytes=api_pb2.UInt64Value(value=used), inodes_used=api_pb2.UInt64Value(value=inodes))
    return api_pb2.ImageFsInfoResponse(image_filesystems=[usage], container_filesystems=[usage])
