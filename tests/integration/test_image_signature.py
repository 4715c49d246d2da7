"""Sigstore signature verification against a real registry on loopback
(the Python API; the gRPC edge is in tests/e2e/test_image_signature.py):
cosign-format signatures made here with `cryptography` are pushed under the
`sha256-<hex>.sig` tag, and a sigstoreSigned policy accepts the image only
when one verifies, before any layer is fetched."""
from __future__ import annotations

import pytest

from crio_native.image.errors import PolicyRejected
from crio_native.image.service import ImageService
from tests.fixtures.cosign import (SigningKey, payload, push_signatures, sign_image,
                                   signature_layer, sigstore_policy)
from tests.fixtures.image_service import make_service  # noqa: F401
from tests.fixtures.oci_builder import ImageBuilder, Pusher, build_index
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.fixture
def push(registry):  # noqa: F811
    return Pusher(registry.url)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.ecdsa()


def nothing_stored(svc: ImageService) -> bool:
    layers = [p for p in svc.store.layers.root.iterdir() if p.name != ".staging"]
    return svc.store.images.all() == [] and layers == []


def layer_gets(registry, image) -> int:  # noqa: F811
    return sum(registry.count_requests("GET", f"/blobs/{b.digest}") for b in image.layers)


def test_signed_image_pulls_and_keeps_the_verdict(make_service, push, registry, key):  # noqa: F811
    image = push.push_image("signed/app", "1", ImageBuilder().busybox().build())
    name = f"{registry.host}/signed/app:1"
    sign_image(push, "signed/app", image.digest, name, key)
    svc = make_service(policy=sigstore_policy(key_data=key.key_data()))
    record = svc.pull(name)
    assert record.id == image.id
    assert record.signature == (f"verified: sigstoreSigned key {key.fingerprint()} "
                                f"identity {name}")
    assert svc.store.images.get(image.id).signature == record.signature   # on disk


def test_key_path_ed25519_and_digest_reference(make_service, push, registry, tmp_path):  # noqa: F811
    ed = SigningKey.ed25519()
    (tmp_path / "cosign.pub").write_bytes(ed.public_pem())
    image = push.push_image("signed/ed", "1", ImageBuilder().busybox().build())
    # a repo-only identity, as cosign writes it: good for a digest reference
    sign_image(push, "signed/ed", image.digest, f"{registry.host}/signed/ed", ed)
    svc = make_service(policy=sigstore_policy(key_path=str(tmp_path / "cosign.pub")))
    by_digest = f"{registry.host}/signed/ed@{image.digest}"
    assert svc.pull(by_digest).signature.startswith(f"verified: sigstoreSigned key "
                                                    f"{ed.fingerprint()}")
    # present and signed, yet pulled again by digest: the signature is checked again
    before = registry.count_requests("GET", "signed/ed/manifests/sha256-")
    svc.pull(by_digest)
    assert registry.count_requests("GET", "signed/ed/manifests/sha256-") == before + 1
    # by tag the default matchRepoDigestOrExact wants name:tag; matchRepository takes it
    with pytest.raises(PolicyRejected, match="does not match matchRepoDigestOrExact"):
        svc.pull(f"{registry.host}/signed/ed:1")
    svc2 = make_service(policy=sigstore_policy(key_path=str(tmp_path / "cosign.pub"),
                                               identity={"type": "matchRepository"}))
    assert svc2.pull(f"{registry.host}/signed/ed:1").signature.startswith("verified: ")


def test_index_signature_covers_the_tag_target(make_service, push, registry, key):  # noqa: F811
    image = ImageBuilder().busybox().build()
    index = push.push_index("signed/multi", "1", [image])
    name = f"{registry.host}/signed/multi:1"
    sign_image(push, "signed/multi", index.digest, name, key)
    svc = make_service(policy=sigstore_policy(key_data=key.key_data()))
    assert svc.pull(name).signature.startswith("verified: ")
    assert build_index([image]).digest == index.digest


@pytest.mark.parametrize("case, reason", [
    ("wrong key", "signature does not verify with the policy's key(s) sha256:"),
    ("other digest", "payload signs manifest sha256:"),
    ("tampered", "signature does not verify"),
    ("missing", ".sig not found"),
])
def test_bad_signatures_refuse_the_pull_before_any_layer(make_service, push, registry, key,  # noqa: F811
                                                        case, reason):
    repo = f"bad/{case.replace(' ', '-')}"
    image = push.push_image(repo, "1", ImageBuilder().busybox().build())
    name = f"{registry.host}/{repo}:1"
    data = payload(name, image.digest)
    if case == "wrong key":
        push_signatures(push, repo, image.digest,
                        [signature_layer(data, SigningKey.ecdsa().sign(data))])
    elif case == "other digest":
        other = payload(name, "sha256:" + "0" * 64)
        push_signatures(push, repo, image.digest, [signature_layer(other, key.sign(other))])
    elif case == "tampered":
        good = bytearray(key.sign(data))
        good[len(good) // 2] ^= 0x01
        push_signatures(push, repo, image.digest, [signature_layer(data, bytes(good))])
    svc = make_service(policy=sigstore_policy(key_data=key.key_data()))
    before = layer_gets(registry, image)     # the busybox layer is shared by the module's images
    with pytest.raises(PolicyRejected) as e:
        svc.pull(name)
    assert reason in str(e.value)
    assert f"image {name} ({image.digest}): rejected by signature policy" in str(e.value)
    assert nothing_stored(svc)
    assert layer_gets(registry, image) == before
    accepting = make_service(policy={"default": [{"type": "insecureAcceptAnything"}]})
    assert accepting.pull(name).signature == "unverified"
    assert layer_gets(registry, image) > before          # the count does see layer downloads


def test_insecure_accept_anything_still_pulls_unsigned(make_service, push, registry):  # noqa: F811
    image = push.push_image("unsigned/app", "1", ImageBuilder().busybox().build())
    svc = make_service(policy={"default": [{"type": "insecureAcceptAnything"}]})
    record = svc.pull(f"{registry.host}/unsigned/app:1")
    assert record.id == image.id and record.signature == "unverified"
    assert registry.count_requests("GET", "unsigned/app/manifests/sha256-") == 0


def test_fulcio_is_refused_not_accepted(make_service, push, registry):  # noqa: F811
    push.push_image("fulcio/app", "1", ImageBuilder().busybox().build())
    svc = make_service(policy={"default": [{"type": "sigstoreSigned", "fulcio": {
        "caPath": "/ca.pem", "oidcIssuer": "https://issuer", "subjectEmail": "a@b"}}]})
    before = registry.count_requests("GET", "/v2/fulcio/")
    with pytest.raises(PolicyRejected, match="requires sigstoreSigned with fulcio, which "
                                             "crio-native does not support"):
        svc.pull(f"{registry.host}/fulcio/app:1")
    assert registry.count_requests("GET", "/v2/fulcio/") == before
