"""RemoveImage: by ID, tag or digest; removes every tag of the image.
Idempotent: removing an absent image succeeds."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.image.service import ImageService


def remove_image(images: ImageService, request: api_pb2.RemoveImageRequest
                 ) -> api_pb2.RemoveImageResponse:
    images.remove(request.image.image)
    return api_pb2.RemoveImageResponse()
