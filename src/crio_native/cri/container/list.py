"""ListContainers with the CRI filter: id (prefix), state, pod sandbox id
(prefix), label selector."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.container.record import CREATING
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container import convert


def matches(record, flt: api_pb2.ContainerFilter) -> bool:
    if flt.id and not record.id.startswith(flt.id):
        return False
    if flt.pod_sandbox_id and not record.sandbox_id.startswith(flt.pod_sandbox_id):
        return False
    if flt.HasField("state") and convert.state(record) != flt.state.state:
        return False
    return all(record.labels.get(k) == v for k, v in flt.label_selector.items())


def visible(ctx: DaemonContext) -> list:
    """Every container past its create, oldest first, with exits folded in."""
    records = [containers_of(ctx).refresh(r) for r in containers_of(ctx).store.all()
               if r.state != CREATING]
    return sorted(records, key=lambda r: r.created_at)


def list_containers(ctx: DaemonContext, request: api_pb2.ListContainersRequest):
    items = [convert.summary(r) for r in visible(ctx) if matches(r, request.filter)]
    return api_pb2.ListContainersResponse(containers=items)
