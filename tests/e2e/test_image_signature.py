"""Image signature verification over real gRPC (issue 13 / internal 20,
item 5's signature result): a daemon whose containers-policy.json asks for
a sigstoreSigned key pulls a cosign-signed image from the loopback
registry, and the started container's attestation record says which key
verified it; a wrong key, a payload for another digest, a tampered
signature and a missing .sig tag each refuse PullImage with
FAILED_PRECONDITION naming the policy and the reason; insecureAcceptAnything
still pulls an unsigned image, recorded as unverified."""
from __future__ import annotations

import json

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.test_containers import container_config, create, cstatus, rpc_code, run_pod
from tests.fixtures.cosign import (SigningKey, payload, push_signatures, sign_image,
                                   signature_layer, sigstore_policy)
from tests.fixtures.oci_builder import ImageBuilder, Pusher
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.fixture
def signing_daemon(daemon_factory, registry, tmp_path):  # noqa: F811
    """A started daemon reading tmp_path/policy.json (read at each pull)."""
    d = daemon_factory()
    d.prepare()
    (d.base / "crio-native.conf.d" / "50-image.conf").write_text(
        f'[image]\nsignature_policy = "{tmp_path / "policy.json"}"\n'
        f'registries_conf = "{tmp_path / "registries.conf"}"\n'
        f'registries_conf_dir = "{tmp_path / "registries.conf.d"}"\n')
    (tmp_path / "registries.conf").write_text("")
    d.policy = tmp_path / "policy.json"
    d.pusher = Pusher(registry.url)
    d.pod_logs = tmp_path / "pod-logs"
    d.pod_logs.mkdir()
    d.start()
    yield d
    if d.proc is not None and d.proc.poll() is None:
        for pod in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


def pull(d, name: str) -> str:
    return d.images.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=name)), timeout=60).image_ref


def test_signed_image_runs_with_a_verified_attestation(signing_daemon, registry):  # noqa: F811
    d, key = signing_daemon, SigningKey.ecdsa()
    image = d.pusher.push_image("signed/busybox", "1", ImageBuilder().busybox().build())
    name = f"{registry.host}/signed/busybox:1"
    sign_image(d.pusher, "signed/busybox", image.digest, name, key)
    d.policy.write_text(json.dumps(sigstore_policy(key_data=key.key_data())))
    assert pull(d, name) == image.id
    verdict = f"verified: sigstoreSigned key {key.fingerprint()} identity {name}"
    info = d.images.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image=name), verbose=True)).info["info"]
    assert json.loads(info)["signature"] == verdict

    d.image_name = name
    pod = run_pod(d, "signed")
    cid = create(d, pod, container_config(d, name="signed"))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    record = json.loads(cstatus(d, cid, verbose=True).info["attestation"])
    assert record["image"]["signature"] == verdict
    assert record["image"]["digest"] == image.digest


@pytest.mark.parametrize("case, reason", [
    ("wrong-key", "signature does not verify with the policy's key(s) sha256:"),
    ("other-digest", "payload signs manifest sha256:" + "0" * 64 + ", not the pulled"),
    ("tampered", "signature does not verify"),
    ("missing", ".sig not found"),
])
def test_bad_signatures_refuse_pull_image(signing_daemon, registry, case, reason):  # noqa: F811
    d, key = signing_daemon, SigningKey.ecdsa()
    repo = f"bad/{case}"
    image = d.pusher.push_image(repo, "1", ImageBuilder().busybox().build())
    name = f"{registry.host}/{repo}:1"
    data = payload(name, image.digest)
    if case == "wrong-key":
        layer = signature_layer(data, SigningKey.ecdsa().sign(data))
    elif case == "other-digest":
        other = payload(name, "sha256:" + "0" * 64)
        layer = signature_layer(other, key.sign(other))
    else:
        sig = bytearray(key.sign(data))
        sig[len(sig) // 2] ^= 0x01
        layer = signature_layer(data, bytes(sig))
    if case != "missing":
        push_signatures(d.pusher, repo, image.digest, [layer])
    d.policy.write_text(json.dumps(sigstore_policy(key_data=key.key_data())))
    code, details = rpc_code(lambda: pull(d, name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert f"rejected by signature policy {d.policy}" in details
    assert reason in details
    listed = d.images.ListImages(api_pb2.ListImagesRequest()).images
    assert image.id not in [i.id for i in listed]


def test_insecure_accept_anything_pulls_unsigned(signing_daemon, registry):  # noqa: F811
    d = signing_daemon
    image = d.pusher.push_image("unsigned/busybox", "1", ImageBuilder().busybox().build())
    name = f"{registry.host}/unsigned/busybox:1"
    d.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    assert pull(d, name) == image.id
    d.image_name = name
    pod = run_pod(d, "unsigned")
    cid = create(d, pod, container_config(d, name="unsigned"))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    record = json.loads(cstatus(d, cid, verbose=True).info["attestation"])
    assert record["image"]["signature"] == "unverified"
