"""ContainerStatus: NOT_FOUND for an unknown id; `verbose` adds the OCI spec,
the pids, the runtime handler and the signed attestation record of a
started container (`attestation`: its stored bytes, docs/policy.md)."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.attestation import signer as attestation_store
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container import convert
from crio_native.cri.container.ids import require_id


def container_status(ctx: DaemonContext, request: api_pb2.ContainerStatusRequest):
    container_id = require_id("ContainerStatus", request.container_id)
    containers = containers_of(ctx)
    record = containers.refresh(containers.store.get(container_id, "ContainerStatus"))
    spec = containers.spec_of(record)
    response = api_pb2.ContainerStatusResponse(status=convert.status(record, spec))
    if request.verbose:
        response.info.update(convert.verbose_info(record, spec))
        signed = attestation_store.read(containers.store.directory, record.id)
        if signed is not None:
            response.info["attestation"] = signed
    return response
