"""RunPodSandbox's request checks at the edge, before anything is made:
the strings of the pod config that become names and paths, and its
resources.  (The sandbox manager checks the rest of the config as it
builds the record, also before anything is made.)"""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.cri.names import check_name
from crio_native.errors import InvalidArgument
from crio_native.spec.pod_resources import pod_resources
from crio_native.spec.process import NAME_MAX, path_length_problem

RPC = "RunPodSandbox"
# The pod's name, namespace and uid reach the CNI plugins as
# CNI_ARGS="K8S_POD_NAME=<name>;K8S_POD_NAMESPACE=<namespace>;...": a ';' or
# '=' in one would split it into other arguments (or be refused by libcni
# as an invalid pair).  Kubernetes never makes such a name.
CNI_ARGS_SEPARATORS = ";="


def check_pod_config(config: api_pb2.PodSandboxConfig) -> None:
    for name in ("name", "namespace", "uid"):
        check_name(RPC, f"config.metadata.{name}", getattr(config.metadata, name),
                   separators=CNI_ARGS_SEPARATORS)
    # the hostname pattern below the edge ends in `$`, which lets one
    # trailing newline through into sethostname and /etc/hosts
    check_name(RPC, "config.hostname", config.hostname)
    check_log_directory(config.log_directory)
    check_cgroup_parent(config.linux.cgroup_parent)
    pod_resources(config.linux)   # raises InvalidArgument naming the field


def check_log_directory(directory: str) -> None:
    """The directory the kubelet made for the pod's container logs: an
    absolute path (a relative one would be taken from the daemon's cwd)
    the kernel takes."""
    if directory and not directory.startswith("/"):
        raise InvalidArgument(f"{RPC}: config.log_directory: must be an absolute path, "
                              f"got {directory!r}")
    check_name(RPC, "config.log_directory", directory)
    problem = path_length_problem(directory)
    if problem:
        raise InvalidArgument(f"{RPC}: config.log_directory: {problem}")


def check_cgroup_parent(parent: str) -> None:
    """What no cgroup directory can be named: a control character (cgroupfs
    refuses "\\n" with EINVAL) or a component longer than NAME_MAX.  The
    cgroup drivers check the path's form (absolute, a slice name)."""
    check_name(RPC, "config.linux.cgroup_parent", parent)
    for part in parent.split("/"):
        if len(part.encode()) > NAME_MAX:
            raise InvalidArgument(f"{RPC}: config.linux.cgroup_parent: the component "
                                  f"{part[:20]!r}... is longer than {NAME_MAX} bytes")
