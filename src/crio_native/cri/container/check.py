"""CreateContainer's request checks at the edge, before anything is made:
the container's name, its log path and the numbers of its resources.  The
spec options check the same again as they build (they are used without
the edge too)."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.cri.names import check_name
from crio_native.errors import InvalidArgument
from crio_native.spec.process import log_path_problem, oom_score_adj_problem
from crio_native.spec.resources import oci_resources

RPC = "CreateContainer"


def check_container_config(config: api_pb2.ContainerConfig) -> None:
    if not config.metadata.name:
        # first: the default log path is made from it
        raise InvalidArgument(f"{RPC}: config.metadata.name: must not be empty")
    check_name(RPC, "config.metadata.name", config.metadata.name)
    problem = log_path_problem(config.log_path)
    if problem:
        raise InvalidArgument(f"{RPC}: config.log_path: {problem}")
    check_resources(RPC, "config.linux.resources", config.linux.resources)


def check_resources(rpc: str, path: str, resources: api_pb2.LinuxContainerResources) -> None:
    """cpu, memory, huge page and unified values as the spec takes them,
    and oom_score_adj; InvalidArgument names `<rpc>: <path>.<field>`."""
    oci_resources(resources, field_prefix=f"{rpc}: {path}")
    problem = oom_score_adj_problem(resources.oom_score_adj)
    if problem:
        raise InvalidArgument(f"{rpc}: {path}.oom_score_adj: {problem}")
