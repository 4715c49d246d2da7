"""Image reference parsing and docker-style normalization."""
from __future__ import annotations

import pytest

from crio_native.errors import InvalidArgument
from crio_native.image.reference import looks_like_image_id, parse_reference

SHA = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/user/app:v2", "docker.io/user/app:v2"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("localhost/app", "localhost/app:latest"),
    ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
    ("quay.io/x/y@" + SHA, "quay.io/x/y@" + SHA),
    ("quay.io/x/y:tag@" + SHA, "quay.io/x/y:tag@" + SHA),
    ("[::1]:5000/img", "[::1]:5000/img:latest"),
])
def test_normalizes(text, expected):
    assert str(parse_reference(text)) == expected


def test_short_flag_and_given_path():
    ref = parse_reference("busybox")
    assert ref.short and ref.short_path == "busybox"
    assert str(ref.with_domain("quay.io")) == "quay.io/busybox:latest"
    assert str(ref.with_domain("docker.io")) == "docker.io/library/busybox:latest"
    assert not parse_reference("quay.io/busybox").short


def test_digest_reference_has_no_default_tag():
    ref = parse_reference("quay.io/x@" + SHA)
    assert ref.tag == "" and ref.digest == SHA and ref.object == SHA
    assert ref.tagged() == ""


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    (" busybox", "padded"),
    ("BusyBox", "invalid repository name"),
    ("busybox:", "invalid tag"),
    ("busybox:-bad", "invalid tag"),
    ("quay.io/x@sha256:abc", "malformed sha256"),
    ("quay.io/x@md5:" + "a" * 32, "unsupported digest"),
    ("quay.io//x", "invalid repository name"),
    ("a" * 300, "longer than"),
])
def test_rejects(text, fragment):
    with pytest.raises(InvalidArgument, match=fragment):
        parse_reference(text, "PullImage: image.image")


def test_error_names_the_field():
    with pytest.raises(InvalidArgument, match=r"^PullImage: image.image: "):
        parse_reference("Nope", "PullImage: image.image")


@pytest.mark.parametrize("text, expected", [
    ("ab" * 32, True), (SHA, True), ("ab" * 31, False), ("busybox", False)])
def test_looks_like_image_id(text, expected):
    assert looks_like_image_id(text) is expected
