"""ListImages, with the optional filter by image reference or ID."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.cri.image.convert import image_message
from crio_native.image.service import ImageService


def list_images(images: ImageService, request: api_pb2.ListImagesRequest
                ) -> api_pb2.ListImagesResponse:
    name = request.filter.image.image if request.HasField("filter") else ""
    return api_pb2.ListImagesResponse(
        images=[image_message(images, r) for r in images.list(name)])
