"""ListPodSandbox with the CRI filter: id (prefix), state, label selector."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, sandboxes_of
from crio_native.cri.sandbox import convert
from crio_native.sandbox.record import CREATING


def matches(record, flt: api_pb2.PodSandboxFilter) -> bool:
    if flt.id and not record.id.startswith(flt.id):
        return False
    if flt.HasField("state") and convert.state(record) != flt.state.state:
        return False
    return all(record.labels.get(k) == v for k, v in flt.label_selector.items())


def list_pod_sandbox(ctx: DaemonContext, request: api_pb2.ListPodSandboxRequest):
    records = sorted((r for r in sandboxes_of(ctx).store.all() if r.state != CREATING),
                     key=lambda r: r.created_at)
    items = [convert.summary(r) for r in records if matches(r, request.filter)]
    return api_pb2.ListPodSandboxResponse(items=items)
