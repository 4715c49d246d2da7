"""Sandbox records as CRI messages."""
from __future__ import annotations

import json

from crio_native._proto import api_pb2
from crio_native.sandbox.record import READY, SandboxRecord


def metadata(record: SandboxRecord) -> api_pb2.PodSandboxMetadata:
    return api_pb2.PodSandboxMetadata(name=record.name, namespace=record.namespace,
                                      uid=record.uid, attempt=record.attempt)


def state(record: SandboxRecord) -> int:
    return api_pb2.SANDBOX_READY if record.state == READY else api_pb2.SANDBOX_NOTREADY


def _id_mappings(maps: list[list[int]]) -> list[api_pb2.IDMapping]:
    return [api_pb2.IDMapping(container_id=c, host_id=h, length=n) for c, h, n in maps]


def status(record: SandboxRecord) -> api_pb2.PodSandboxStatus:
    network = api_pb2.PodSandboxNetworkStatus()
    if record.ips:
        network.ip = record.ips[0]
        network.additional_ips.extend(api_pb2.PodIP(ip=ip) for ip in record.ips[1:])
    options = api_pb2.NamespaceOption(network=record.network_mode, pid=record.pid_mode,
                                      ipc=record.ipc_mode)
    if record.userns_uids:
        options.userns_options.CopyFrom(api_pb2.UserNamespace(
            mode=api_pb2.POD, uids=_id_mappings(record.userns_uids),
            gids=_id_mappings(record.userns_gids)))
    return api_pb2.PodSandboxStatus(
        id=record.id, metadata=metadata(record), state=state(record),
        created_at=record.created_at, network=network,
        linux=api_pb2.LinuxPodSandboxStatus(
            namespaces=api_pb2.Namespace(options=options)),
        labels=record.labels, annotations=record.annotations,
        runtime_handler=record.runtime_handler)


def verbose_info(record: SandboxRecord) -> dict[str, str]:
    info = {"pins": record.pins, "directory": record.directory, "shm": record.shm_path,
            "network": record.network_name, "state": record.state,
            "portMappings": record.port_mappings, "sysctls": record.sysctls,
            "cgroupDirs": record.cgroup_dirs, "selinuxLevel": record.selinux_level}
    return {"info": json.dumps(info, sort_keys=True)}


def summary(record: SandboxRecord) -> api_pb2.PodSandbox:
    return api_pb2.PodSandbox(id=record.id, metadata=metadata(record), state=state(record),
                              created_at=record.created_at, labels=record.labels,
                              annotations=record.annotations,
                              runtime_handler=record.runtime_handler)
