"""Sigstore signatures (image/signature.py) and the sigstoreSigned policy
entry without a registry: payload and key checks, signedIdentity, policy
validation, and the refusal of what is not built (Fulcio, Rekor)."""
from __future__ import annotations

import base64
import json

import pytest

from crio_native.errors import ConfigError
from crio_native.image import signature as sig
from crio_native.image.distribution import digest_of
from crio_native.image.errors import ManifestUnknown, PolicyRejected
from crio_native.image.policy import load_policy
from crio_native.image.reference import parse_reference
from tests.fixtures.cosign import SigningKey, payload, sigstore_policy

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
IMAGE = "reg.example:5000/team/app"


class FakeRegistry:
    """Manifests by tag and blobs by digest, as RegistryClient serves them."""

    def __init__(self):
        self.manifests: dict[str, bytes] = {}
        self.blobs: dict[str, bytes] = {}

    def sign(self, digest: str, signed: list[tuple[bytes, bytes]]) -> None:
        layers = []
        for data, signature in signed:
            self.blobs[digest_of(data)] = data
            layers.append({"mediaType": sig.SIGNATURE_LAYER, "digest": digest_of(data),
                           "size": len(data), "annotations": {
                               sig.SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}})
        self.manifests[sig.signature_tag(digest)] = json.dumps({"layers": layers}).encode()

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        if reference not in self.manifests:
            raise ManifestUnknown(f"manifests/{reference}: not found")
        body = self.manifests[reference]
        return body, "application/vnd.oci.image.manifest.v1+json", digest_of(body)

    def get_blob(self, digest: str, limit: int = 0) -> bytes:
        return self.blobs[digest]


def requirement(key: SigningKey, identity: dict | None = None) -> dict:
    req = {"type": "sigstoreSigned", "keyData": key.key_data()}
    if identity is not None:
        req["signedIdentity"] = identity
    return req


@pytest.mark.parametrize("make_key", [SigningKey.ecdsa, SigningKey.ed25519])
def test_a_signature_by_the_policy_key_verifies(make_key):
    key, reg = make_key(), FakeRegistry()
    data = payload(f"{IMAGE}:1", DIGEST)
    reg.sign(DIGEST, [(data, key.sign(data))])
    verdict = sig.verify_requirement(requirement(key), reg, parse_reference(f"{IMAGE}:1"), DIGEST)
    assert verdict == f"verified: sigstoreSigned key {key.fingerprint()} identity {IMAGE}:1"


def test_one_good_signature_among_bad_ones_is_enough():
    key, stranger, reg = SigningKey.ecdsa(), SigningKey.ecdsa(), FakeRegistry()
    data = payload(f"{IMAGE}:1", DIGEST)
    reg.sign(DIGEST, [(data, stranger.sign(data)), (data, key.sign(data))])
    assert sig.verify_requirement(requirement(key), reg, parse_reference(f"{IMAGE}:1"),
                                  DIGEST).startswith("verified: ")


def refusal(key: SigningKey, reg: FakeRegistry, image: str = f"{IMAGE}:1",
            identity: dict | None = None) -> str:
    with pytest.raises(PolicyRejected) as e:
        sig.verify_requirement(requirement(key, identity), reg, parse_reference(image), DIGEST)
    return str(e.value)


def test_refusals_name_the_reason():
    key = SigningKey.ecdsa()
    data = payload(f"{IMAGE}:1", DIGEST)

    reg = FakeRegistry()
    assert f"tag {DIGEST.replace(':', '-')}.sig not found" in refusal(key, reg)

    reg.sign(DIGEST, [(data, SigningKey.ecdsa().sign(data))])                # wrong key
    assert "does not verify with the policy's key(s) " + key.fingerprint() in refusal(key, reg)

    good = bytearray(key.sign(data))
    good[-1] ^= 1
    reg.sign(DIGEST, [(data, bytes(good))])                                    # tampered
    assert "does not verify" in refusal(key, reg)

    other = payload(f"{IMAGE}:1", OTHER)
    reg.sign(DIGEST, [(other, key.sign(other))])                               # another image
    assert f"payload signs manifest {OTHER}, not the pulled {DIGEST}" in refusal(key, reg)

    wrong_type = payload(f"{IMAGE}:1", DIGEST, kind="something else")
    reg.sign(DIGEST, [(wrong_type, key.sign(wrong_type))])
    assert "payload type is 'something else'" in refusal(key, reg)

    reg.sign(DIGEST, [(data, b"")])
    assert "no base64 dev.cosignproject.cosign/signature annotation" in refusal(key, reg)

    elsewhere = payload("reg.example:5000/team/other:1", DIGEST)
    reg.sign(DIGEST, [(elsewhere, key.sign(elsewhere))])
    assert "signed identity reg.example:5000/team/other:1 does not match " \
           "matchRepoDigestOrExact" in refusal(key, reg)


@pytest.mark.parametrize("identity, image, signed, ok", [
    ({"type": "matchRepoDigestOrExact"}, f"{IMAGE}:1", f"{IMAGE}:1", True),
    ({"type": "matchRepoDigestOrExact"}, f"{IMAGE}:1", f"{IMAGE}:2", False),
    ({"type": "matchRepoDigestOrExact"}, f"{IMAGE}:1", IMAGE, False),       # cosign's repo-only
    ({"type": "matchRepoDigestOrExact"}, f"{IMAGE}@{DIGEST}", f"{IMAGE}:2", True),
    ({"type": "matchRepoDigestOrExact"}, f"{IMAGE}@{DIGEST}", "reg.example:5000/x:2", False),
    ({"type": "matchExact"}, f"{IMAGE}@{DIGEST}", f"{IMAGE}:2", False),
    ({"type": "matchExact"}, f"{IMAGE}:1", f"{IMAGE}:1", True),
    ({"type": "matchRepository"}, f"{IMAGE}:1", IMAGE, True),
    ({"type": "matchRepository"}, f"{IMAGE}:1", "reg.example:5000/team/app2", False),
    ({"type": "matchRepository"}, "busybox:1", "index.docker.io/library/busybox", True),
    ({"type": "exactRepository", "dockerRepository": "mirror.example/app"}, f"{IMAGE}:1",
     "mirror.example/app:7", True),
    ({"type": "exactRepository", "dockerRepository": "mirror.example/app"}, f"{IMAGE}:1",
     IMAGE, False),
    ({"type": "exactReference", "dockerReference": "mirror.example/app:7"}, f"{IMAGE}:1",
     "mirror.example/app:7", True),
    ({"type": "exactReference", "dockerReference": "mirror.example/app:7"}, f"{IMAGE}:1",
     "mirror.example/app:8", False),
])
def test_signed_identity(identity, image, signed, ok):
    key, reg = SigningKey.ed25519(), FakeRegistry()
    data = payload(signed, DIGEST)
    reg.sign(DIGEST, [(data, key.sign(data))])
    if ok:
        sig.verify_requirement(requirement(key, identity), reg, parse_reference(image), DIGEST)
    else:
        assert "does not match" in refusal(key, reg, image, identity)


def write(tmp_path, doc):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return load_policy(str(path))


@pytest.mark.parametrize("req, message", [
    ({"type": "sigstoreSigned"}, "exactly one of keyPath"),
    ({"type": "sigstoreSigned", "keyPath": "/k", "keyData": "eA=="}, "exactly one of keyPath"),
    ({"type": "sigstoreSigned", "keyPaths": []}, "keyPaths must be a non-empty list"),
    ({"type": "sigstoreSigned", "keyPath": "/k", "colour": "red"}, "unknown field"),
    ({"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "anything"}},
     "unknown signedIdentity"),
    ({"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "exactReference"}},
     "exactReference needs dockerReference"),
])
def test_malformed_entries_fail_the_file(tmp_path, req, message):
    with pytest.raises(ConfigError, match=message):
        write(tmp_path, {"default": [req]})


@pytest.mark.parametrize("extra, named", [
    ({"fulcio": {"caPath": "/ca.pem", "oidcIssuer": "x", "subjectEmail": "y"}}, "fulcio"),
    ({"keyPath": "/k", "rekorPublicKeyPath": "/rekor.pub"}, "rekorPublicKeyPath"),
    ({"keyPath": "/k", "signedIdentity": {"type": "remapIdentity", "prefix": "a.io",
                                          "signedPrefix": "b.io"}}, "remapIdentity"),
])
def test_unsupported_forms_refuse_before_any_request(tmp_path, extra, named):
    policy = write(tmp_path, {"default": [{"type": "sigstoreSigned", **extra}]})
    with pytest.raises(PolicyRejected, match=f"requires sigstoreSigned with .*{named}.*"
                                              "does not support"):
        policy.check(parse_reference("a.io/x:1"))


def test_policy_verification_needed_only_where_a_scope_asks(tmp_path):
    key = SigningKey.ecdsa()
    policy = write(tmp_path, {"default": [{"type": "insecureAcceptAnything"}],
                              "transports": {"docker": {"a.io/signed": [
                                  requirement(key)]}}})
    assert policy.check(parse_reference("a.io/signed/app:1")).needed
    plain = policy.check(parse_reference("a.io/other:1"))
    assert not plain.needed and plain.verify(FakeRegistry(), DIGEST) == "unverified"
    assert policy.verifies_any()
    assert not write(tmp_path, {"default": [{"type": "insecureAcceptAnything"}]}).verifies_any()


def test_policy_rejection_names_file_scope_and_reason(tmp_path):
    key = SigningKey.ecdsa()
    policy = write(tmp_path, sigstore_policy(key_data=key.key_data()))
    check = policy.check(parse_reference("a.io/x:1"))
    with pytest.raises(PolicyRejected) as e:
        check.verify(FakeRegistry(), DIGEST)
    assert str(e.value) == (f"image a.io/x:1 ({DIGEST}): rejected by signature policy "
                            f"{tmp_path / 'policy.json'} scope 'docker transport default' "
                            f"(sigstoreSigned): no sigstore signature: tag "
                            f"{sig.signature_tag(DIGEST)} not found")


def test_keys_from_paths_and_bad_keys(tmp_path):
    a, b = SigningKey.ecdsa(), SigningKey.ed25519()
    (tmp_path / "a.pub").write_bytes(a.public_pem())
    (tmp_path / "b.pub").write_bytes(b.public_pem())
    keys = sig.load_keys({"keyPaths": [str(tmp_path / "a.pub"), str(tmp_path / "b.pub")]})
    assert [k.fingerprint for k in keys] == [a.fingerprint(), b.fingerprint()]
    assert sig.load_keys({"keyDatas": [a.key_data()]})[0].fingerprint == a.fingerprint()
    with pytest.raises(ValueError, match="keyPath .*absent.pub: No such file"):
        sig.load_keys({"keyPath": str(tmp_path / "absent.pub")})
    with pytest.raises(ValueError, match="keyData 0: not a PEM public key"):
        sig.load_keys({"keyData": base64.b64encode(b"junk").decode()})
    reg = FakeRegistry()
    reg.sign(DIGEST, [])
    with pytest.raises(PolicyRejected, match="cannot load the policy's key: keyPath"):
        sig.verify_requirement({"keyPath": str(tmp_path / "absent.pub")}, reg,
                               parse_reference("a.io/x:1"), DIGEST)


def test_the_attestation_record_carries_the_verdict_kept_with_the_image(tmp_path):
    from crio_native.attestation.signer import Attestor
    from crio_native.image.service import ImageService
    from crio_native.storage.images import ImageRecord
    from tests.unit.test_attestation import config_for, container, spec
    from tests.unit.test_spec_support import base_sandbox

    config = config_for(tmp_path)
    images = ImageService(config)
    attestor = Attestor.for_config(config, image_signature=images.signature_of)
    c = container()
    assert attestor.record(c, spec(), base_sandbox())["image"]["signature"] == "unverified"
    verdict = "verified: sigstoreSigned key sha256:" + "12" * 32 + " identity registry.local/app:1"
    images.store.images.save(ImageRecord(
        id=c.image_id, manifest_digest="sha256:" + "ab" * 32, config_digest=c.image_id,
        layers=[], size=0, signature=verdict))
    assert attestor.record(c, spec(), base_sandbox())["image"]["signature"] == verdict
