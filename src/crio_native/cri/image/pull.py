"""PullImage: answers with the image ID, the same ID ImageStatus,
ListImages and ContainerStatus report."""
from __future__ import annotations

from typing import TYPE_CHECKING

from crio_native._proto import api_pb2
from crio_native.image.service import ImageService

if TYPE_CHECKING:   # urllib3 is loaded at the first pull
    from crio_native.image.distribution import Credentials


def credentials_from(auth: api_pb2.AuthConfig) -> Credentials | None:
    if not (auth.username or auth.auth or auth.identity_token or auth.registry_token):
        return None
    from crio_native.image.distribution import Credentials
    return Credentials.from_auth(auth.username, auth.password, auth.auth,
                                 auth.identity_token, auth.registry_token)


def pull_image(images: ImageService, request: api_pb2.PullImageRequest
               ) -> api_pb2.PullImageResponse:
    record = images.pull(request.image.image, credentials_from(request.auth))
    return api_pb2.PullImageResponse(image_ref=record.id)
