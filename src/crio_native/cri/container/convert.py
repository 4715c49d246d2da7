"""Container records as CRI messages."""
from __future__ import annotations

import json
from typing import Any

from crio_native._proto import api_pb2
from crio_native.container.record import CREATED, CREATING, EXITED, RUNNING, ContainerRecord

_STATES = {CREATED: api_pb2.CONTAINER_CREATED, RUNNING: api_pb2.CONTAINER_RUNNING,
           EXITED: api_pb2.CONTAINER_EXITED}


def state(record: ContainerRecord) -> int:
    return _STATES.get(record.state, api_pb2.CONTAINER_UNKNOWN)


def metadata(record: ContainerRecord) -> api_pb2.ContainerMetadata:
    return api_pb2.ContainerMetadata(name=record.name, attempt=record.attempt)


def image_spec(record: ContainerRecord) -> api_pb2.ImageSpec:
    """The image as the user asked for it: the kubelet shows `image` as the
    pod's status.containerStatuses[].image, so it must be the pod spec's
    name (user_specified_image), not the id the kubelet resolved it to and
    sent as config.image.image; image_ref and image_id carry the digest and
    id.  A client that sends no user_specified_image gets back its image."""
    name = record.user_image or record.image
    return api_pb2.ImageSpec(image=name, annotations=record.image_annotations,
                             user_specified_image=record.user_image)


def summary(record: ContainerRecord) -> api_pb2.Container:
    return api_pb2.Container(
        id=record.id, pod_sandbox_id=record.sandbox_id, metadata=metadata(record),
        image=image_spec(record), image_ref=record.image_ref,
        state=state(record), created_at=record.created_at, labels=record.labels,
        annotations=record.annotations, image_id=record.image_id)


def _signal(name: str) -> int:
    try:
        return api_pb2.Signal.Value(name)
    except ValueError:
        return api_pb2.RUNTIME_DEFAULT


def _resources(spec: dict[str, Any]) -> api_pb2.ContainerResources | None:
    res = (spec.get("linux") or {}).get("resources") or {}
    cpu, memory = res.get("cpu") or {}, res.get("memory") or {}
    if not cpu and not memory:
        return None
    linux = api_pb2.LinuxContainerResources(
        cpu_period=cpu.get("period", 0), cpu_quota=cpu.get("quota", 0),
        cpu_shares=cpu.get("shares", 0), cpuset_cpus=cpu.get("cpus", ""),
        cpuset_mems=cpu.get("mems", ""), memory_limit_in_bytes=max(memory.get("limit", 0), 0),
        memory_swap_limit_in_bytes=max(memory.get("swap", 0), 0))
    return api_pb2.ContainerResources(linux=linux)


def _user(spec: dict[str, Any]) -> api_pb2.ContainerUser | None:
    user = (spec.get("process") or {}).get("user")
    if not user:
        return None
    return api_pb2.ContainerUser(linux=api_pb2.LinuxContainerUser(
        uid=user.get("uid", 0), gid=user.get("gid", 0),
        supplemental_groups=user.get("additionalGids") or []))


def status(record: ContainerRecord, spec: dict[str, Any]) -> api_pb2.ContainerStatus:
    msg = api_pb2.ContainerStatus(
        id=record.id, metadata=metadata(record), state=state(record),
        created_at=record.created_at, started_at=record.started_at,
        finished_at=record.finished_at, exit_code=record.exit_code,
        image=image_spec(record), image_ref=record.image_ref,
        image_id=record.image_id, reason=record.reason, message=record.message,
        labels=record.labels, annotations=record.annotations, log_path=record.log_path,
        mounts=[api_pb2.Mount(**m) for m in record.mounts],
        stop_signal=_signal(record.stop_signal))
    resources = _resources(spec)
    if resources is not None:
        msg.resources.CopyFrom(resources)
    user = _user(spec)
    if user is not None:
        msg.user.CopyFrom(user)
    return msg


def verbose_info(record: ContainerRecord, spec: dict[str, Any]) -> dict[str, str]:
    info = {"pid": record.pid, "monitorPid": record.monitor_pid,
            "runtimeHandler": record.runtime_handler, "sandboxID": record.sandbox_id,
            "bundle": record.bundle, "rootfs": record.rootfs,
            "cgroupDirs": record.cgroup_dirs, "runtimeSpec": spec}
    return {"info": json.dumps(info, sort_keys=True)}


def pod_container_statuses(manager, sandbox_id: str) -> list[api_pb2.ContainerStatus]:
    """The statuses of a pod's containers (PodSandboxStatus, events)."""
    return [status(r, manager.spec_of(r)) for r in map(manager.refresh,
                                                        manager.of_sandbox(sandbox_id))
            if r.state != CREATING]
