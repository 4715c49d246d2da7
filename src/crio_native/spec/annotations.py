"""Spec annotations: the request's own, then containerd's io.kubernetes.cri.*
set on top (what tools such as kata, gVisor and NRI plugins read to tell a
container from its sandbox).  We use containerd's names rather than CRI-O's
io.kubernetes.cri-o.* ones; the request cannot override them."""
from __future__ import annotations

from crio_native.spec.inputs import SpecBuild, SpecInputs

PREFIX = "io.kubernetes.cri."
CONTAINER_TYPE = PREFIX + "container-type"
CONTAINER_NAME = PREFIX + "container-name"
SANDBOX_ID = PREFIX + "sandbox-id"
SANDBOX_NAME = PREFIX + "sandbox-name"
SANDBOX_NAMESPACE = PREFIX + "sandbox-namespace"
SANDBOX_UID = PREFIX + "sandbox-uid"
IMAGE_NAME = PREFIX + "image-name"


def with_annotations(build: SpecBuild, inputs: SpecInputs) -> None:
    pod = inputs.sandbox
    annotations = {k: v for k, v in inputs.config.annotations.items()
                   if not k.startswith(PREFIX)}
    annotations.update({
        CONTAINER_TYPE: "container",
        CONTAINER_NAME: inputs.config.metadata.name,
        SANDBOX_ID: pod.id,
        SANDBOX_NAME: pod.name,
        SANDBOX_NAMESPACE: pod.namespace,
        SANDBOX_UID: pod.uid,
        IMAGE_NAME: inputs.image_name or inputs.config.image.image,
    })
    build.spec["annotations"] = dict(sorted(annotations.items()))
