"""Container records as CRI messages: the image a container reports is the
one the user named, its id and digest beside it."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.container import prepare
from crio_native.container.record import RUNNING, ContainerRecord
from crio_native.cri.container import convert

IMAGE_ID = "4f1c2a" * 10 + "abcd"
DIGEST = "registry.test/e2e/busybox@sha256:" + "d" * 64


def record_for(image: api_pb2.ImageSpec) -> ContainerRecord:
    """A record as CreateContainer makes it from config.image."""
    return ContainerRecord(id="c1", sandbox_id="p1", name="c", attempt=0, state=RUNNING,
                           image_ref=DIGEST, image_id=IMAGE_ID,
                           **prepare.requested_image(image))


@pytest.mark.parametrize("requested, shown", [
    # the kubelet: the id it resolved in image, the pod spec's name beside it
    (api_pb2.ImageSpec(image=IMAGE_ID, user_specified_image="busybox:1"), "busybox:1"),
    # crictl and older clients send the name alone
    (api_pb2.ImageSpec(image="registry.test/e2e/busybox:1"), "registry.test/e2e/busybox:1"),
    (api_pb2.ImageSpec(image=IMAGE_ID), IMAGE_ID),
])
def test_status_and_list_show_the_image_the_user_asked_for(requested, shown):
    record = record_for(requested)
    for message in (convert.status(record, {}), convert.summary(record)):
        assert message.image.image == shown
        assert message.image.user_specified_image == requested.user_specified_image
        assert (message.image_ref, message.image_id) == (DIGEST, IMAGE_ID)


def test_image_annotations_come_back():
    requested = api_pb2.ImageSpec(image=IMAGE_ID, user_specified_image="busybox:1",
                                  annotations={"kubernetes.io/platform": "linux/amd64"})
    st = convert.status(record_for(requested), {})
    assert dict(st.image.annotations) == {"kubernetes.io/platform": "linux/amd64"}


def test_a_record_from_before_user_image_shows_its_image():
    doc = record_for(api_pb2.ImageSpec(image=IMAGE_ID)).to_dict()
    for key in ("user_image", "image_annotations"):
        del doc[key]
    old = ContainerRecord.from_dict(doc)
    assert convert.summary(old).image == api_pb2.ImageSpec(image=IMAGE_ID)
