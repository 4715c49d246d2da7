"""CRI ImageService: one module per RPC group; this module wires them up."""
from __future__ import annotations

from crio_native.context import DaemonContext
from crio_native.image.service import ImageService


def images_of(ctx: DaemonContext) -> ImageService:
    """The daemon's image service, created on first use."""
    with ctx.lock:
        if ctx.images is None:
            ctx.images = ImageService(ctx.config)
        return ctx.images  # type: ignore[return-value]


def rpcs(ctx: DaemonContext) -> dict:
    from crio_native._proto import api_pb2
    from crio_native.cri.chunks import streamed
    from crio_native.cri.image import fsinfo, listing, pull, remove, status

    return {
        "PullImage": lambda req, c: pull.pull_image(images_of(ctx), req),
        "ImageStatus": lambda req, c: status.image_status(images_of(ctx), req),
        "ListImages": lambda req, c: listing.list_images(images_of(ctx), req),
        "RemoveImage": lambda req, c: remove.remove_image(images_of(ctx), req),
        "ImageFsInfo": lambda req, c: fsinfo.image_fs_info(images_of(ctx), req),
        "StreamImages": streamed(lambda r: listing.list_images(images_of(ctx), r),
                                 api_pb2.ListImagesRequest, api_pb2.StreamImagesResponse),
    }
