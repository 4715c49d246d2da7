"""linux.namespaces and linux.sysctl.

net, ipc and uts are the pod's: joined by the path of the pin the sandbox
made, or absent (the host's) when the pod has none of that kind.  pid follows
the container's NamespaceMode; mount and cgroup are always the container's
own; user only when the pod has a user namespace pinned."""
from __future__ import annotations

from typing import Any

from crio_native._proto import api_pb2
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.sandbox.validate import sysctl_namespace
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

NS_OPTS = "linux.security_context.namespace_options"
POD_KINDS = (("network", "net"), ("ipc", "ipc"), ("uts", "uts"))


def _ns(kind: str, path: str = "") -> dict[str, Any]:
    return {"type": kind, "path": path} if path else {"type": kind}


def pod_namespace_joins(pins: dict[str, str]) -> list[dict[str, Any]]:
    """OCI namespace entries joining the network, IPC and UTS namespaces a pod pinned."""
    return [_ns(kind, pins[pin]) for kind, pin in POD_KINDS if pin in pins]


def pid_namespace(inputs: SpecInputs) -> dict[str, Any] | None:
    opts = inputs.security.namespace_options
    mode = opts.pid
    if mode == api_pb2.CONTAINER:
        return _ns("pid")
    if mode == api_pb2.NODE:
        return None
    if mode == api_pb2.POD:
        path = inputs.sandbox.pins.get("pid") or inputs.pod_pid_namespace
        if not path and inputs.sandbox.pid_mode == api_pb2.CONTAINER:
            # POD is also the proto default (an unset field, crictl's case);
            # a pod that does not share its pid namespace gets a private one.
            return _ns("pid")
        if not path:
            raise FailedPrecondition(f"{RPC}: config.{NS_OPTS}.pid: pod {inputs.sandbox.id} "
                                     "has no shared pid namespace")
        return _ns("pid", path)
    if mode == api_pb2.TARGET:
        if not opts.target_id:
            raise invalid(f"{NS_OPTS}.target_id", "PID mode TARGET needs a target container")
        if not inputs.target_pid_namespace:
            raise invalid(f"{NS_OPTS}.target_id",
                          f"container {opts.target_id} has no running process to share with")
        return _ns("pid", inputs.target_pid_namespace)
    raise invalid(f"{NS_OPTS}.pid", f"unknown namespace mode {mode}")


def _check_pod_mode(inputs: SpecInputs) -> None:
    """A container cannot move to the host's network or IPC namespace when
    its pod has its own.  POD (also what an unset field reads as) follows
    the pod, whichever namespaces it has."""
    opts = inputs.security.namespace_options
    for name, pod_mode in (("network", inputs.sandbox.network_mode),
                           ("ipc", inputs.sandbox.ipc_mode)):
        mine = getattr(opts, name)
        if mine == api_pb2.NODE and pod_mode != api_pb2.NODE:
            raise invalid(f"{NS_OPTS}.{name}", f"mode {api_pb2.NamespaceMode.Name(mine)} "
                          f"differs from the pod's {api_pb2.NamespaceMode.Name(pod_mode)}")


def user_namespace(inputs: SpecInputs) -> dict[str, Any] | None:
    opts = inputs.security.namespace_options
    userns = opts.userns_options
    if not opts.HasField("userns_options") or userns.mode == api_pb2.NODE:
        return None
    path = inputs.sandbox.pins.get("user")
    if userns.mode != api_pb2.POD or not path:
        raise invalid(f"{NS_OPTS}.userns_options.mode",
                      "user namespaces need a pod with a pinned user namespace")
    return _ns("user", path)


def _id_mappings(mappings) -> list[dict[str, int]]:
    return [{"containerID": m.container_id, "hostID": m.host_id, "size": m.length}
            for m in mappings]


def with_namespaces(build: SpecBuild, inputs: SpecInputs) -> None:
    _check_pod_mode(inputs)
    namespaces = pod_namespace_joins(inputs.sandbox.pins)
    pid = pid_namespace(inputs)
    if pid:
        namespaces.append(pid)
    namespaces += [_ns("mount"), _ns("cgroup")]
    user = user_namespace(inputs)
    if user:
        namespaces.append(user)
        userns = inputs.security.namespace_options.userns_options
        build.linux["uidMappings"] = _id_mappings(userns.uids)
        build.linux["gidMappings"] = _id_mappings(userns.gids)
    build.linux["namespaces"] = namespaces


def _joined_kinds(build: SpecBuild) -> set[str]:
    return {n["type"] for n in build.linux.get("namespaces", [])}


def with_sysctls(build: SpecBuild, inputs: SpecInputs) -> None:
    """The daemon's default_sysctls, for the namespaces the container has.

    The pod's own sysctls are not repeated: the sandbox already wrote them
    into the namespaces it pinned and every container joins (containerd's
    model).  A default for a namespace the container shares with the host
    is left out rather than changing the node."""
    sysctls = {}
    present = _joined_kinds(build)
    for entry in inputs.daemon.runtime.default_sysctls:
        name, _, value = entry.partition("=")
        name = name.strip().replace("/", ".")
        where = sysctl_namespace(name)
        if where is None:
            raise InvalidArgument(f"{RPC}: runtime.default_sysctls: {name} is not namespaced")
        if name in inputs.sandbox.sysctls:
            continue        # the pod's value, already set, wins
        if {"net": "network"}.get(where, where) in present:
            sysctls[name] = value.strip()
    if sysctls:
        build.linux["sysctl"] = sysctls
