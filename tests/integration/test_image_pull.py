"""Pulling from a real registry on loopback through the Python API: tags,
digests, indexes, mirrors, verification, hostile layers, sharing, removal,
dedup of concurrent pulls, timeouts and the signature policy."""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument, NotFound
from crio_native.image.errors import (ContentMismatch, ManifestUnknown, PolicyRejected,
                                      PullTimeout, RegistryUnavailable, UnsafeLayer)
from crio_native.image.service import ImageService
from tests.fixtures.image_service import make_service  # noqa: F401
from tests.fixtures.oci_builder import (ImageBuilder, Pusher, directory, file, hostile_layers,
                                        opaque, whiteout)
from tests.fixtures.proxy import FlakyProxy
from tests.fixtures.registry import registry  # noqa: F401
from tests.ports import free_port

pytestmark = pytest.mark.root


@pytest.fixture
def service(make_service) -> ImageService:
    return make_service()


@pytest.fixture
def push(registry):
    return Pusher(registry.url)


def layer_dirs(svc: ImageService) -> list[str]:
    return sorted(p.name for p in svc.store.layers.root.iterdir() if p.name != ".staging")


def assert_nothing_stored(svc: ImageService) -> None:
    assert svc.store.images.all() == []
    assert layer_dirs(svc) == []
    assert list((svc.store.layers.root / ".staging").iterdir()) == []


# ---- basic pulls -------------------------------------------------------------

@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_pull_by_tag(service, push, registry, compression):
    image = push.push_image(f"tag/{compression}", "v1", ImageBuilder(user="1000:1000")
                            .busybox(compression).add_layer([file("etc/motd", "hi")],
                                                            compression).build())
    record = service.pull(f"{registry.host}/tag/{compression}:v1")
    assert record.id == image.id
    assert record.repo_tags == [f"{registry.host}/tag/{compression}:v1"]
    assert record.repo_digests == [f"{registry.host}/tag/{compression}@{image.digest}"]
    assert record.user == "1000:1000"
    assert record.size == image.config.size + sum(b.size for b in image.layers)
    base = service.store.layers.diff_dir(record.layers[0])
    assert os.access(base / "bin/busybox", os.X_OK)
    assert os.readlink(base / "bin/sh") == "busybox"
    assert (service.store.layers.diff_dir(record.layers[1]) / "etc/motd").read_text() == "hi"
    assert service.get(record.id) == record == service.get(f"{registry.host}/tag/{compression}:v1")


def test_pull_sha512_layers(service, push, registry):
    image = push.push_image("digest/sha512", "1", ImageBuilder(layer_algorithm="sha512")
                            .busybox().build())
    assert image.layers[0].digest.startswith("sha512:")
    assert service.pull(f"{registry.host}/digest/sha512:1").id == image.id


def test_pull_docker_schema2(service, push, registry):
    image = push.push_image("docker/app", "1", ImageBuilder(docker=True).busybox().build())
    assert service.pull(f"{registry.host}/docker/app:1").id == image.id


def test_pull_docker_manifest_list(service, push, registry):
    images = [ImageBuilder(docker=True, architecture=a).busybox().add_layer([file("a", a)])
              .build() for a in ("arm64", "amd64")]
    push.push_index("docker/list", "1", images, docker=True)
    assert service.pull(f"{registry.host}/docker/list:1").id == images[1].id


def test_downloads_are_bounded(make_service, push, registry):
    layers = [[file(f"f{i}", os.urandom(400_000))] for i in range(6)]
    builder = ImageBuilder()
    for entries in layers:
        builder.add_layer(entries, "none")
    image = push.push_image("bounded/app", "1", builder.build())
    with FlakyProxy(registry.url) as proxy:
        proxy.blob_delay = 0.2
        svc = make_service(max_concurrent_downloads=2)
        assert svc.pull(f"{proxy.host}/bounded/app:1").id == image.id
        assert proxy.max_blobs_in_flight == 2


def test_pull_by_digest_then_present_without_network(service, push, registry):
    image = push.push_image("digest/app", "", ImageBuilder().busybox().build())
    name = f"{registry.host}/digest/app@{image.digest}"
    record = service.pull(name)
    assert record.repo_tags == [] and record.repo_digests == [name]
    manifest_gets = registry.count_requests("GET", "/manifests/")
    assert service.pull(name).id == image.id
    assert registry.count_requests("GET", "/manifests/") == manifest_gets


def test_pull_from_index_selects_platform(service, push, registry):
    arm = ImageBuilder(architecture="arm64", variant="v8").busybox()
    arm.add_layer([file("arch", "arm64")])
    amd = ImageBuilder().busybox().add_layer([file("arch", "amd64")])
    index = push.push_index("multi/app", "latest", [arm.build(), amd.build()])
    record = service.pull(f"{registry.host}/multi/app")
    assert record.id == amd.build().id
    assert record.repo_digests == [f"{registry.host}/multi/app@{index.digest}"]
    assert (service.store.layers.diff_dir(record.layers[1]) / "arch").read_text() == "amd64"


def test_index_without_our_platform(service, push, registry):
    push.push_index("multi/armonly", "1", [ImageBuilder(architecture="arm64").busybox().build()])
    with pytest.raises(ManifestUnknown, match="no manifest for platform linux/amd64"):
        service.pull(f"{registry.host}/multi/armonly:1")


def test_unknown_tag_and_bad_reference(service, registry):
    with pytest.raises(ManifestUnknown, match="not found"):
        service.pull(f"{registry.host}/nothing/here:1")
    with pytest.raises(InvalidArgument, match="image.image"):
        service.pull("Bad:Name")


def test_short_name_through_search_registry(make_service, push, registry):
    push.push_image("busybox", "latest", ImageBuilder().busybox().build())
    svc = make_service(f'unqualified-search-registries = ["{registry.host}"]\n')
    record = svc.pull("busybox")
    assert record.repo_tags == [f"{registry.host}/busybox:latest"]
    assert svc.get("busybox") == record  # ImageStatus with the name the pod spec has


def test_tag_moves_to_the_newer_image(service, push, registry):
    first = push.push_image("moving/app", "v1", ImageBuilder().busybox().build())
    service.pull(f"{registry.host}/moving/app:v1")
    second = push.push_image("moving/app", "v1", ImageBuilder(env=["A=1"]).busybox().build())
    service.pull(f"{registry.host}/moving/app:v1")
    assert service.store.images.get(first.id).repo_tags == []
    assert service.get(f"{registry.host}/moving/app:v1").id == second.id


# ---- mirrors -----------------------------------------------------------------

def test_pull_through_mirror(make_service, push, registry):
    image = push.push_image("pause", "3.10", ImageBuilder(cmd=["/pause"]).busybox().build())
    dead = f"127.0.0.1:{free_port()}"
    svc = make_service(f"""
[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"
[[registry.mirror]]
location = "{dead}"
[[registry.mirror]]
location = "{registry.host}"
""")
    record = svc.pull("registry.k8s.io/pause:3.10")
    assert record.id == image.id
    assert record.repo_tags == ["registry.k8s.io/pause:3.10"]
    assert record.repo_digests == [f"registry.k8s.io/pause@{image.digest}"]
    assert svc.pinned(record)  # the configured pause image is pinned


def test_mirror_from_daemon_config(make_service, push, registry):
    image = push.push_image("team/app", "2", ImageBuilder().busybox().build())
    svc = make_service(mirrors={"quay.example": [registry.host]})
    assert svc.pull("quay.example/team/app:2").id == image.id


# ---- verification and hostile content ---------------------------------------

@pytest.mark.parametrize("which", ["layer", "config"])
def test_digest_mismatch_stores_nothing(service, push, registry, which):
    # Blobs are shared between repositories, so tamper only with this test's own.
    image = push.push_image(f"tampered/{which}", "1", ImageBuilder(labels={"t": which}).busybox()
                            .add_layer([file("own", which * 1000)], "none").build())
    blob = image.layers[1] if which == "layer" else image.config
    registry.tamper_blob(blob.digest)
    with pytest.raises(ContentMismatch, match="does not match"):
        service.pull(f"{registry.host}/tampered/{which}:1")
    assert_nothing_stored(service)


def test_diff_id_mismatch(service, push, registry):
    builder = ImageBuilder().busybox()
    image = builder.build()
    config = json.loads(image.config.data)
    config["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64
    image.config.data = json.dumps(config).encode()
    manifest = json.loads(image.manifest.data)
    manifest["config"] = image.config.descriptor()
    image.manifest.data = json.dumps(manifest).encode()
    push.push_image("tampered/diffid", "1", image)
    with pytest.raises(ContentMismatch, match="diff_id"):
        service.pull(f"{registry.host}/tampered/diffid:1")
    assert_nothing_stored(service)


@pytest.mark.parametrize("damage", ["bad-deflate", "truncated", "bad-crc"])
def test_corrupt_gzip_layer_refused(service, push, registry, damage):
    """A gzip layer whose bytes match its digest but do not inflate: refused
    as a mismatch naming the layer, whichever inflater read it."""
    image = ImageBuilder(labels={"gz": damage}).busybox() \
        .add_layer([file("own", damage * 5000)], "gzip").build()
    layer = image.layers[1]
    good = layer.data
    layer.data = {"bad-deflate": good[:10] + b"\xff" * 64,
                  "truncated": good[:len(good) // 2],
                  "bad-crc": good[:-8] + bytes(8)}[damage]
    manifest = json.loads(image.manifest.data)
    manifest["layers"][1] = layer.descriptor()
    image.manifest.data = json.dumps(manifest).encode()
    push.push_image(f"corrupt/{damage}", "1", image)
    with pytest.raises(ContentMismatch, match="cannot unpack") as info:
        service.pull(f"{registry.host}/corrupt/{damage}:1")
    assert layer.digest in str(info.value)
    assert_nothing_stored(service)


HOSTILE_WHY = {"dotdot": "'..'", "nested-dotdot": "'..'", "absolute": "absolute path",
               "symlink-escape": "through symlink 'etc'",
               "relative-symlink-escape": "through symlink 'up'",
               "hardlink-escape": "'..'", "hardlink-through-symlink": "through symlink 'e'",
               "whiteout-dot": "whiteout of '.'", "whiteout-dotdot": "whiteout of '..'"}


@pytest.mark.parametrize("kind", sorted(hostile_layers()))
def test_hostile_layer_refused(service, push, registry, kind):
    repo = f"hostile/{kind}"
    image = push.push_image(repo, "1", ImageBuilder().busybox()
                            .add_layer(hostile_layers()[kind]).build())
    with pytest.raises(UnsafeLayer) as info:
        service.pull(f"{registry.host}/{repo}:1")
    message = str(info.value)
    assert f"{registry.host}/{repo}:1" in message and image.layers[1].digest in message
    assert HOSTILE_WHY[kind] in message and "layer 1" in message and "entry '" in message
    assert not os.path.exists("/etc/crn-escape")
    assert_nothing_stored(service)


# ---- layers, whiteouts, removal, usage ---------------------------------------

def test_whiteouts_in_mounted_rootfs(service, push, registry):
    image = push.push_image("wh/app", "1", ImageBuilder().busybox().add_layer([
        directory("data"), file("data/keep", "k"), file("data/drop", "d"),
        directory("cache"), file("cache/old", "o")]).add_layer([
            whiteout("data/drop"), opaque("cache"), file("cache/new", "n")]).build())
    record = service.pull(f"{registry.host}/wh/app:1")
    assert record.id == image.id
    merged = service.create_rootfs("ctr-wh", f"{registry.host}/wh/app:1")
    try:
        assert os.path.ismount(merged)
        assert sorted(os.listdir(merged / "data")) == ["keep"]
        assert sorted(os.listdir(merged / "cache")) == ["new"]
        assert (merged / "bin/busybox").exists()
        (merged / "data/written").write_text("w")
        os.unlink(merged / "data/keep")
        upper = merged.parent / "upper"
        assert (upper / "data/written").read_text() == "w"
        assert stat.S_ISCHR(os.lstat(upper / "data/keep").st_mode)
        lowest = service.store.layers.diff_dir(record.layers[1])
        assert (lowest / "data/keep").read_text() == "k"  # layers stay untouched
    finally:
        service.remove_rootfs("ctr-wh")
    assert not merged.parent.exists()


def test_remove_image_in_use_is_refused(service, push, registry):
    image = push.push_image("inuse/app", "1", ImageBuilder().busybox().build())
    service.pull(f"{registry.host}/inuse/app:1")
    service.create_rootfs("ctr-inuse", image.id)
    try:
        with pytest.raises(FailedPrecondition, match="in use by container.*ctr-inuse"):
            service.remove(f"{registry.host}/inuse/app:1")
    finally:
        service.remove_rootfs("ctr-inuse")
    assert service.remove(image.id).id == image.id


def test_rootfs_for_unknown_image(service):
    with pytest.raises(NotFound, match="config.image.image"):
        service.create_rootfs("ctr-x", "127.0.0.1:1/none:1")
    assert list(service.rootfs.root.iterdir()) == []


def test_shared_layers_stored_once_and_freed_last(service, push, registry):
    a = push.push_image("share/a", "1", ImageBuilder().busybox().add_layer([file("a", "a")]).build())
    b = push.push_image("share/b", "1", ImageBuilder().busybox().add_layer([file("b", "b")]).build())
    ra = service.pull(f"{registry.host}/share/a:1")
    rb = service.pull(f"{registry.host}/share/b:1")
    assert ra.layers[0] == rb.layers[0]
    assert len(layer_dirs(service)) == 3
    base = a.layers[0].digest
    assert sum(registry.count_requests("GET", f"/v2/share/{r}/blobs/{base}") for r in "ab") == 1
    service.remove(f"{registry.host}/share/a:1")
    assert len(layer_dirs(service)) == 2 and service.get(rb.id) is not None
    assert not service.store.content.has(a.config.digest)
    service.remove(rb.id)
    assert layer_dirs(service) == [] and service.list() == []
    assert b.id not in {r.id for r in service.list()}


def test_remove_by_tag_removes_every_tag(service, push, registry):
    image = ImageBuilder().busybox().build()
    push.push_image("rm/app", "one", image)
    push.push_image("rm/app", "two", image)
    service.pull(f"{registry.host}/rm/app:one")
    record = service.pull(f"{registry.host}/rm/app:two")
    assert sorted(record.repo_tags) == [f"{registry.host}/rm/app:one", f"{registry.host}/rm/app:two"]
    assert service.remove(f"{registry.host}/rm/app:one").id == image.id
    assert service.get(f"{registry.host}/rm/app:two") is None
    assert service.remove(f"{registry.host}/rm/app:two") is None  # idempotent


def test_remove_by_digest_and_by_id_hex(service, push, registry):
    image = push.push_image("rm/bydigest", "1", ImageBuilder().busybox().build())
    service.pull(f"{registry.host}/rm/bydigest:1")
    assert service.remove(f"{registry.host}/rm/bydigest@{image.digest}").id == image.id
    service.pull(f"{registry.host}/rm/bydigest:1")
    assert service.remove(image.id.split(":")[1]).id == image.id
    assert_nothing_stored(service)


def test_fs_usage_follows_pulls_and_removes(service, push, registry):
    push.push_image("usage/app", "1", ImageBuilder().busybox().build())
    _, bytes0, inodes0 = service.fs_usage()
    record = service.pull(f"{registry.host}/usage/app:1")
    mountpoint, bytes1, inodes1 = service.fs_usage()
    assert mountpoint == str(service.store.root)
    assert bytes1 > bytes0 + 1_000_000 and inodes1 > inodes0 + 10
    service.remove(record.id)
    assert service.fs_usage()[1:] == (bytes0, inodes0)


# ---- concurrency ---------------------------------------------------------------

def test_concurrent_pulls_download_each_blob_once(service, push, registry):
    image = push.push_image("many/app", "1", ImageBuilder().busybox()
                            .add_layer([file("x", os.urandom(3_000_000))], "none").build())
    results, errors = [], []

    def pull():
        try:
            results.append(service.pull(f"{registry.host}/many/app:1").id)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=pull) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [image.id] * 10
    for blob in [image.config, *image.layers]:
        assert registry.count_requests("GET", f"/many/app/blobs/{blob.digest}") == 1, blob


def test_concurrent_images_share_layer_download(service, push, registry):
    base = [file("big", os.urandom(4_000_000))]
    images = [push.push_image(f"sharedl/{i}", "1", ImageBuilder().add_layer(base, "none")
                              .add_layer([file("n", str(i))]).build()) for i in range(4)]
    threads = [threading.Thread(target=service.pull, args=(f"{registry.host}/sharedl/{i}:1",))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(service.list()) == 4
    big = images[0].layers[0].digest
    assert sum(registry.count_requests("GET", f"/sharedl/{i}/blobs/{big}") for i in range(4)) == 1


# ---- failures ----------------------------------------------------------------

def test_registry_down_is_unavailable(service):
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="127.0.0.1"):
        service.pull(f"127.0.0.1:{free_port()}/nobody/home:1")
    assert time.monotonic() - started < 10


def test_stalled_registry_times_out(make_service):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_stall():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_stall)
    thread.start()
    try:
        svc = make_service(pull_progress_timeout="1s")
        started = time.monotonic()
        with pytest.raises(PullTimeout, match="no progress for 1s"):
            svc.pull(f"127.0.0.1:{listener.getsockname()[1]}/stalled/app:1")
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_policy_rejects_before_any_request(make_service, push, registry):
    push.push_image("policy/app", "1", ImageBuilder().busybox().build())
    svc = make_service(policy={"default": [{"type": "insecureAcceptAnything"}],
                               "transports": {"docker": {f"{registry.host}/policy": [
                                   {"type": "reject"}]}}})
    before = registry.count_requests("GET", "/v2/policy/")
    with pytest.raises(PolicyRejected, match="reject"):
        svc.pull(f"{registry.host}/policy/app:1")
    assert registry.count_requests("GET", "/v2/policy/") == before


def test_stall_mid_blob_times_out_and_leaves_nothing(make_service, push, registry):
    push.push_image("stall/app", "1", ImageBuilder().busybox().build())
    with FlakyProxy(registry.url) as proxy:
        proxy.stall_blobs = True
        svc = make_service(pull_progress_timeout="1s")
        started = time.monotonic()
        with pytest.raises(PullTimeout, match="blob sha256:.*no progress for 1s"):
            svc.pull(f"{proxy.host}/stall/app:1")
        assert time.monotonic() - started < 10
    assert_nothing_stored(svc)


def test_transient_errors_are_retried(service, push, registry):
    image = push.push_image("flaky/app", "1", ImageBuilder().busybox().build())
    with FlakyProxy(registry.url) as proxy:
        proxy.fail_next = 2
        assert service.pull(f"{proxy.host}/flaky/app:1").id == image.id
        assert proxy.requests[:3] == ["GET /v2/flaky/app/manifests/1"] * 3


def test_persistent_errors_give_up(service, push, registry):
    push.push_image("flaky/down", "1", ImageBuilder().busybox().build())
    with FlakyProxy(registry.url) as proxy:
        proxy.fail_next = 100
        with pytest.raises(RegistryUnavailable, match="HTTP 503"):
            service.pull(f"{proxy.host}/flaky/down:1")
        assert len(proxy.requests) == 4  # the first try and 3 retries


def test_crash_debris_is_cleared_on_open(service, push, registry):
    kept = push.push_image("debris/kept", "1", ImageBuilder().busybox().build())
    lost = push.push_image("debris/lost", "1", ImageBuilder().busybox()
                           .add_layer([file("lost", "x")]).build())
    service.pull(f"{registry.host}/debris/kept:1")
    record = service.pull(f"{registry.host}/debris/lost:1")
    # A crash after the layers were committed but before the record was written:
    service.store.images.delete(record.id)
    staging = service.store.layers.root / ".staging"
    (staging / "half-pulled" / "diff").mkdir(parents=True)
    (staging / "half-pulled" / "diff" / "junk").write_text("x")
    again = ImageService(service.config)
    try:
        assert list(staging.iterdir()) == []
        assert layer_dirs(again) == [kept.diff_ids[0].split(":")[1]]
        assert not again.store.content.has(lost.config.digest)
        assert again.store.content.has(kept.config.digest)
        assert again.pull(f"{registry.host}/debris/lost:1").id == lost.id
    finally:
        again.close()
