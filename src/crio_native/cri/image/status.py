"""ImageStatus: an absent image is not an error, just an empty answer."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.cri.image.convert import image_message
from crio_native.image.service import ImageService


def image_status(images: ImageService, request: api_pb2.ImageStatusRequest
                 ) -> api_pb2.ImageStatusResponse:
    record = images.get(request.image.image)
    if record is None:
        return api_pb2.ImageStatusResponse()
    response = api_pb2.ImageStatusResponse(image=image_message(images, record))
    if request.verbose:
        response.info.update(images.verbose_info(record))
    return response
