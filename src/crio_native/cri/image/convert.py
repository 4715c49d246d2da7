"""Image records → CRI Image messages."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.image.service import ImageService, user_of
from crio_native.storage.images import ImageRecord


def image_message(images: ImageService, record: ImageRecord) -> api_pb2.Image:
    user = user_of(record.user)
    msg = api_pb2.Image(id=record.id, repo_tags=record.repo_tags,
                        repo_digests=record.repo_digests, size=record.size,
                        username=user.username, pinned=images.pinned(record),
                        spec=api_pb2.ImageSpec(image=record.id))
    if user.uid is not None:
        msg.uid.value = user.uid
    return msg
