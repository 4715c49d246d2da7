"""UpdateContainerResources: checked like CreateContainer's resources, with
errors naming this request's field.  A fake context; no root, no runtime."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from crio_native._proto import api_pb2
from crio_native.cri.container.update import update_container_resources
from crio_native.errors import InvalidArgument


class RecordingContainers:
    def __init__(self):
        self.updates = []

    def update_resources(self, container_id, resources):
        self.updates.append((container_id, resources))


def update(**linux):
    ctx = SimpleNamespace(containers=RecordingContainers())
    update_container_resources(ctx, api_pb2.UpdateContainerResourcesRequest(
        container_id="c1", linux=api_pb2.LinuxContainerResources(**linux)))
    return ctx.containers.updates


def test_applies_the_non_empty_oci_resources():
    assert update(memory_limit_in_bytes=64 << 20) == [
        ("c1", {"memory": {"limit": 64 << 20, "swap": 64 << 20}})]


@pytest.mark.parametrize("linux, message", [
    ({"cpu_shares": 1},
     "UpdateContainerResources: linux.cpu_shares: must be in [2, 262144], got 1"),
    ({"memory_swap_limit_in_bytes": 1},
     "UpdateContainerResources: linux.memory_swap_limit_in_bytes: needs memory_limit_in_bytes"),
    ({"unified": {"cgroup.procs": "1"}},
     "UpdateContainerResources: linux.unified['cgroup.procs']: not a cgroup v2 controller file"),
])
def test_invalid_resources_name_the_update_field(linux, message):
    with pytest.raises(InvalidArgument) as info:
        update(**linux)
    assert str(info.value) == message
