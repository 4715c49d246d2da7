"""UpdateContainerResources: new cgroup limits for a created or running
container, checked like CreateContainer's and applied by its runtime."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext
from crio_native.cri.container.ids import require_id
from crio_native.errors import InvalidArgument
from crio_native.spec.resources import oci_resources

CREATE_FIELD = "CreateContainer: config.linux.resources"


def update_container_resources(ctx: DaemonContext,
                               request: api_pb2.UpdateContainerResourcesRequest):
    container_id = require_id("UpdateContainerResources", request.container_id)
    try:
        parts = oci_resources(request.linux)
    except InvalidArgument as e:
        # the checks are CreateContainer's; name this request's field instead
        raise InvalidArgument(str(e).replace(CREATE_FIELD, "UpdateContainerResources: linux")
                              ) from None
    resources = {key: value for key, value in parts if value}
    ctx.containers.update_resources(container_id, resources)
    return api_pb2.UpdateContainerResourcesResponse()
