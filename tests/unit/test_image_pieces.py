"""Pieces of the image path that need no root and no registry: chain IDs,
the streaming readers, platform selection, USER parsing, pinning, errors."""
from __future__ import annotations

import gzip
import os
import hashlib
import io

import pytest
import zstandard

from crio_native.config.sections import Config
from crio_native.errors import ErrorKind
from crio_native.image import errors
from crio_native.image.distribution import Credentials
from crio_native.image.manifest import Platform, diff_ids_of, parse_manifest, select_platform
from crio_native.image.service import ImageService, user_of
from crio_native.storage.images import ImageRecord
from crio_native.storage.layers import chain_ids
from crio_native.storage import layers as layers_mod
from crio_native.storage import streams
from crio_native.storage.streams import (ChunkReader, HashingReader, TarStream, compression_of,
                                         decompressed)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def test_chain_ids_follow_the_oci_formula():
    second = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {D3}".encode()).hexdigest()
    assert chain_ids([D1, D2, D3]) == [D1, second, third]
    assert chain_ids([]) == []


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_stream_pipeline_hashes_both_sides(kind):
    payload = b"layer bytes " * 50_000
    packed = {"gzip": lambda b: gzip.compress(b), "zstd": zstandard.ZstdCompressor().compress,
              "none": lambda b: b}[kind](payload)
    chunks = iter([packed[i:i + 1000] for i in range(0, len(packed), 1000)])
    raw = ChunkReader(chunks)
    assert compression_of(raw.peek(4)) == kind
    outer = HashingReader(raw)
    inner = HashingReader(decompressed(outer, kind))
    out = io.BytesIO()
    while data := inner.read(7777):
        out.write(data)
    outer.drain()
    assert out.getvalue() == payload
    assert inner.digest == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert outer.digest == "sha256:" + hashlib.sha256(packed).hexdigest()
    assert outer.size == len(packed)


INDEX = {"manifests": [
    {"digest": D1, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
    {"digest": D2, "size": 2, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": D3, "size": 3, "platform": {"os": "linux", "architecture": "amd64"}},
]}


@pytest.mark.parametrize("want, digest", [
    (Platform("linux", "amd64"), D3),
    (Platform("linux", "arm", "v7"), D2),
    (Platform("linux", "arm"), D1),
])
def test_select_platform(want, digest):
    assert select_platform(INDEX, want, "image x").digest == digest


def test_select_platform_names_what_is_offered():
    with pytest.raises(errors.ManifestUnknown, match="linux/arm/v6, linux/arm/v7, linux/amd64"):
        select_platform(INDEX, Platform("linux", "s390x"), "image x")


@pytest.mark.parametrize("doc, fragment", [
    ({"schemaVersion": 1}, "schemaVersion"),
    ({"schemaVersion": 2, "layers": []}, "lacks config"),
    ({"schemaVersion": 2, "config": {"digest": "sha256:zz", "size": 1}, "layers": []},
     "malformed sha256"),
    ({"schemaVersion": 2, "config": {"digest": D1, "size": -1}, "layers": []}, "negative"),
])
def test_bad_manifests(doc, fragment):
    with pytest.raises(errors.ContentMismatch, match=fragment):
        parse_manifest(doc, "image x")


def test_diff_ids_must_match_layer_count():
    with pytest.raises(errors.ContentMismatch, match="2 entries for 1 layers"):
        diff_ids_of({"rootfs": {"diff_ids": [D1, D2]}}, 1, "image x")


@pytest.mark.parametrize("user, uid, name", [
    ("", 0, ""), ("1000", 1000, ""), ("1000:1000", 1000, ""), ("nobody", None, "nobody"),
    ("app:staff", None, "app")])
def test_user_of(user, uid, name):
    parsed = user_of(user)
    assert (parsed.uid, parsed.username) == (uid, name)


def test_pinned_patterns(tmp_path):
    config = Config(root=str(tmp_path))
    config.image.pinned_images = ["quay.io/team/*", "busybox"]
    svc = ImageService(config)
    try:
        def rec(*tags):
            return ImageRecord(id=D1, manifest_digest=D2, config_digest=D1, layers=[], size=0,
                               repo_tags=list(tags))
        assert svc.pinned(rec("quay.io/team/app:1"))
        assert svc.pinned(rec("docker.io/library/busybox:latest"))
        assert svc.pinned(rec("registry.k8s.io/pause:3.10"))  # the pause image
        assert not svc.pinned(rec("quay.io/other/app:1"))
        assert not svc.pinned(rec("docker.io/library/busybox:1.0"))
    finally:
        svc.close()


def test_credentials_from_auth_field():
    creds = Credentials.from_auth(auth="dXNlcjpwYTpzcw==")  # user:pa:ss
    assert (creds.username, creds.password) == ("user", "pa:ss")
    assert Credentials().basic() is None


# The gRPC code of each kind is checked at the edge (test_errors.py).
@pytest.mark.parametrize("cls, kind", [
    (errors.RegistryUnavailable, ErrorKind.UNAVAILABLE),
    (errors.PullTimeout, ErrorKind.DEADLINE_EXCEEDED),
    (errors.ManifestUnknown, ErrorKind.NOT_FOUND),
    (errors.Unauthenticated, ErrorKind.UNAUTHENTICATED),
    (errors.ContentMismatch, ErrorKind.FAILED_PRECONDITION),
    (errors.UnsafeLayer, ErrorKind.FAILED_PRECONDITION),
    (errors.PolicyRejected, ErrorKind.FAILED_PRECONDITION),
])
def test_error_kinds(cls, kind):
    assert cls("x").kind is kind


# ---- rootfs mount plan, through a recording seam ------------------------------

def test_rootfs_mounts_layers_uppermost_first(tmp_path):
    from crio_native.storage.layers import LayerStore
    from crio_native.storage.rootfs import RootfsStore

    calls = []
    layers = LayerStore(tmp_path / "layers")
    rootfs = RootfsStore(tmp_path / "containers", layers,
                         mount=lambda *a: calls.append(("mount", *a)),
                         unmount=lambda t: calls.append(("unmount", t)))
    chains = chain_ids([D1, D2, D3])
    record = ImageRecord(id=D1, manifest_digest=D2, config_digest=D1, layers=chains, size=0)
    merged = rootfs.create("c1", record)
    [(_, source, target, fstype, flags, options)] = calls
    assert (source, target, fstype, flags) == ("overlay", str(merged), "overlay", 0)
    lowers = options.split(",")[0].removeprefix("lowerdir=").split(":")
    assert lowers == [str(layers.short_link(c)) for c in reversed(chains)]
    assert all(len(os.path.basename(p)) == 10 for p in lowers)
    assert os.readlink(lowers[0]) == f"../layers/{chains[2].split(':')[1]}/diff"
    assert options.endswith(f"upperdir={merged.parent}/upper,workdir={merged.parent}/work")
    assert rootfs.users_of(D1) == ["c1"] and rootfs.users_of(D2) == []
    rootfs.remove("c1")  # not a mount point here, so only the directory goes
    assert not merged.parent.exists() and rootfs.users_of(D1) == []


def test_rootfs_mount_label_is_a_quoted_context_option(tmp_path):
    from crio_native.storage.layers import LayerStore
    from crio_native.storage.rootfs import RootfsStore

    calls = []
    rootfs = RootfsStore(tmp_path / "containers", LayerStore(tmp_path / "layers"),
                         mount=lambda *a: calls.append(a), unmount=lambda t: None)
    record = ImageRecord(id=D1, manifest_digest=D2, config_digest=D1, layers=chain_ids([D1]),
                         size=0)
    rootfs.create("c1", record, "system_u:object_r:container_file_t:s0:c1,c2")
    assert calls[0][-1].endswith(',context="system_u:object_r:container_file_t:s0:c1,c2"')


def test_rootfs_refuses_what_does_not_fit(tmp_path):
    from crio_native.errors import AlreadyExists, InvalidArgument
    from crio_native.storage.layers import LayerStore
    from crio_native.storage.rootfs import RootfsStore

    layers = LayerStore(tmp_path / "layers")
    rootfs = RootfsStore(tmp_path / "containers", layers, mount=lambda *a: None,
                         unmount=lambda t: None)
    many = chain_ids(["sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
                      for i in range(200)])
    record = ImageRecord(id=D1, manifest_digest=D2, config_digest=D1, layers=many, size=0)
    with pytest.raises(InvalidArgument, match="too many layers"):
        rootfs.create("big", record)
    assert not (tmp_path / "containers" / "big").exists()
    rootfs.create("c2", ImageRecord(id=D1, manifest_digest=D2, config_digest=D1,
                                    layers=many[:1], size=0))
    with pytest.raises(AlreadyExists):
        rootfs.create("c2", record)
    with pytest.raises(InvalidArgument, match="bad container id"):
        rootfs.path("../x")


def test_tar_stream_reads_seeks_forward_copies_and_hashes(tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "BLOCK", 7)   # every read crosses blocks
    data = bytes(range(256)) * 10
    tar = TarStream(io.BytesIO(data))
    assert tar.read(3) == data[:3] and tar.tell() == 3
    assert tar.read(20) == data[3:23]
    assert tar.seek(100) == 100 and tar.read(1) == data[100:101]
    with pytest.raises(io.UnsupportedOperation):
        tar.seek(50)
    with open(tmp_path / "out", "wb") as out:
        assert tar.copy_to(out.fileno(), 1000) == 1000
    assert (tmp_path / "out").read_bytes() == data[101:1101]
    assert tar.tell() == 1101
    tar.drain()
    assert tar.read(5) == b"" and tar.size == len(data)
    assert tar.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    with open(tmp_path / "short", "wb") as out:   # past the end: what there was
        assert TarStream(io.BytesIO(b"abc")).copy_to(out.fileno(), 10) == 3


@pytest.mark.parametrize("sync", [False, True])
def test_layer_commit_syncs_the_filesystem_once_before_the_rename(tmp_path, monkeypatch, sync):
    """image.sync_layers: one syncfs per layer, before the layer is visible."""
    store = layers_mod.LayerStore(tmp_path / "layers", sync=sync)
    staged = store.new_staging()
    (staged / "diff" / "f").write_bytes(b"data")
    seen = []
    real_syncfs = layers_mod.syncfs

    def recording_syncfs(path):
        seen.append((path, store.exists(D1)))
        real_syncfs(path)

    monkeypatch.setattr(layers_mod, "syncfs", recording_syncfs)
    store.commit(staged, layers_mod.LayerRecord(D1, D1, "", D2, 10, 4))
    assert store.exists(D1) and (store.diff_dir(D1) / "f").read_bytes() == b"data"
    assert seen == ([(staged, False)] if sync else [])


def test_puller_takes_sync_layers_from_the_config(tmp_path):
    config = Config(root=str(tmp_path / "root"))
    config.image.sync_layers = True
    service = ImageService(config)
    try:
        assert service.puller.store.layers.sync is True
    finally:
        service.close()
