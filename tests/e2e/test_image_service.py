"""The CRI ImageService over real gRPC: a daemon on a private socket pulls
from a loopback registry (directly and through a registries.conf mirror)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.fixtures.oci_builder import ImageBuilder, Pusher, file
from tests.fixtures.registry import registry, running_registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.fixture
def image_daemon(daemon_factory, registry, tmp_path):
    """A daemon whose registries.conf mirrors registry.k8s.io to the test registry."""
    d = daemon_factory()
    d.prepare()
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nprefix = "registry.k8s.io"\n'
                    f'[[registry.mirror]]\nlocation = "{registry.host}"\n')
    (d.base / "crio-native.conf.d" / "50-image.conf").write_text(
        f'[image]\nregistries_conf = "{conf}"\n'
        f'registries_conf_dir = "{tmp_path / "registries.conf.d"}"\n'
        f'signature_policy = "{tmp_path / "policy.json"}"\n'
        f'pinned_images = ["{registry.host}/pinned/*"]\n')
    return d.start()


def spec(name: str) -> api_pb2.ImageSpec:
    return api_pb2.ImageSpec(image=name)


def status(daemon, name: str, verbose: bool = False) -> api_pb2.ImageStatusResponse:
    return daemon.images.ImageStatus(api_pb2.ImageStatusRequest(image=spec(name), verbose=verbose))


def test_pull_status_list_remove(image_daemon, registry):
    d = image_daemon
    image = Pusher(registry.url).push_image("e2e/app", "v1", ImageBuilder(user="1234").busybox()
                                            .add_layer([file("hello", "world")], "zstd").build())
    name = f"{registry.host}/e2e/app:v1"
    ref = d.images.PullImage(api_pb2.PullImageRequest(image=spec(name))).image_ref
    assert ref == image.id

    st = status(d, name, verbose=True)
    assert st.image.id == image.id
    assert list(st.image.repo_tags) == [name]
    assert list(st.image.repo_digests) == [f"{registry.host}/e2e/app@{image.digest}"]
    assert st.image.uid.value == 1234 and st.image.username == ""
    assert st.image.size == image.config.size + sum(b.size for b in image.layers)
    assert not st.image.pinned
    info = json.loads(st.info["info"])
    assert info["imageSpec"]["config"]["User"] == "1234"
    assert status(d, image.id).image.id == image.id
    assert status(d, f"{registry.host}/e2e/app@{image.digest}").image.id == image.id

    listed = d.images.ListImages(api_pb2.ListImagesRequest()).images
    assert [i.id for i in listed] == [image.id]
    filtered = d.images.ListImages(api_pb2.ListImagesRequest(
        filter=api_pb2.ImageFilter(image=spec(f"{registry.host}/nope:1")))).images
    assert list(filtered) == []

    fs = d.images.ImageFsInfo(api_pb2.ImageFsInfoRequest())
    used = fs.image_filesystems[0].used_bytes.value
    assert fs.image_filesystems[0].fs_id.mountpoint == str(d.base / "root" / "storage")
    assert used > 1_000_000 and fs.image_filesystems[0].inodes_used.value > 10

    d.images.RemoveImage(api_pb2.RemoveImageRequest(image=spec(name)))
    assert not status(d, name).HasField("image")
    d.images.RemoveImage(api_pb2.RemoveImageRequest(image=spec(name)))  # idempotent
    after = d.images.ImageFsInfo(api_pb2.ImageFsInfoRequest()).image_filesystems[0]
    assert after.used_bytes.value < used - 1_000_000


def test_pull_through_mirror_and_pinning(image_daemon, registry):
    d = image_daemon
    push = Pusher(registry.url)
    pause = push.push_image("pause", "3.10", ImageBuilder(cmd=["/pause"]).busybox().build())
    pinned = push.push_image("pinned/app", "1", ImageBuilder(user="nobody").busybox().build())
    resp = d.images.PullImage(api_pb2.PullImageRequest(image=spec("registry.k8s.io/pause:3.10")))
    assert resp.image_ref == pause.id
    st = status(d, "registry.k8s.io/pause:3.10").image
    assert st.pinned and list(st.repo_tags) == ["registry.k8s.io/pause:3.10"]
    d.images.PullImage(api_pb2.PullImageRequest(image=spec(f"{registry.host}/pinned/app:1")))
    st = status(d, f"{registry.host}/pinned/app:1").image
    assert st.id == pinned.id and st.pinned and st.username == "nobody"
    assert not st.HasField("uid")


@pytest.mark.parametrize("name, code, fragment", [
    ("Not/Valid", grpc.StatusCode.INVALID_ARGUMENT, "image.image"),
    ("", grpc.StatusCode.INVALID_ARGUMENT, "image.image"),
    ("{host}/missing/app:1", grpc.StatusCode.NOT_FOUND, "not found"),
])
def test_pull_errors(image_daemon, registry, name, code, fragment):
    with pytest.raises(grpc.RpcError) as info:
        image_daemon.images.PullImage(api_pb2.PullImageRequest(
            image=spec(name.format(host=registry.host))))
    assert info.value.code() == code
    assert fragment in info.value.details()


def test_pull_with_auth_config(image_daemon):
    daemon = image_daemon
    with running_registry(htpasswd={"kube": "let-me-in"}) as reg:
        image = Pusher(reg.url, "kube", "let-me-in").push_image(
            "auth/app", "1", ImageBuilder().busybox().build())
        name = f"{reg.host}/auth/app:1"
        with pytest.raises(grpc.RpcError) as info:
            daemon.images.PullImage(api_pb2.PullImageRequest(image=spec(name)))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        auth = api_pb2.AuthConfig(username="kube", password="let-me-in", server_address=reg.host)
        resp = daemon.images.PullImage(api_pb2.PullImageRequest(image=spec(name), auth=auth))
        assert resp.image_ref == image.id


def test_ten_concurrent_pulls_fetch_each_blob_once(image_daemon, registry):
    image = Pusher(registry.url).push_image("e2e/many", "1", ImageBuilder().busybox()
                                            .add_layer([file("big", b"z" * 5_000_000)]).build())
    name = f"{registry.host}/e2e/many:1"
    request = api_pb2.PullImageRequest(image=spec(name))
    with ThreadPoolExecutor(10) as pool:
        refs = list(pool.map(lambda _: image_daemon.images.PullImage(request).image_ref,
                             range(10)))
    assert refs == [image.id] * 10
    for blob in [image.config, *image.layers]:
        assert registry.count_requests("GET", f"/e2e/many/blobs/{blob.digest}") == 1
