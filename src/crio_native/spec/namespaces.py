"""linux.namespaces and linux.sysctl.

net, ipc and uts are the pod's: joined by the path of the pin the sandbox
made, or absent (the host's) when the pod has none of that kind.  pid follows
the container's NamespaceMode; mount and cgroup are always the container's
own; user (KEP-127) only when the pod has a user namespace pinned, and then
every container joins it."""
from __future__ import annotations

from typing import Any

from crio_native._proto import api_pb2
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.sandbox.validate import check_userns, sysctl_namespace
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

NS_OPTS = "linux.security_context.namespace_options"
POD_KINDS = (("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("user", "user"))
USERNS = f"{NS_OPTS}.userns_options"


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


def check_container_userns(inputs: SpecInputs) -> None:
    """KEP-127: a container is in its pod's user namespace, the one RunPodSandbox
    pinned (every container joins it, as net/ipc/uts).  Its own userns_options,
    which the kubelet copies from the pod's, must say the same: the same mode
    and, for POD, the pod's mappings."""
    opts = inputs.security.namespace_options
    pod_has = "user" in inputs.sandbox.pins
    if not opts.HasField("userns_options"):
        return
    maps = check_userns(opts.userns_options, RPC)
    if maps is None:
        if pod_has:
            raise invalid(f"{USERNS}.mode", "mode NODE in a pod with its own user namespace")
        return
    if not pod_has:
        raise invalid(f"{USERNS}.mode", f"mode POD but pod {inputs.sandbox.id} has no user "
                                        "namespace (its RunPodSandbox asked for none)")
    for key, mine, pods in (("uids", maps[0], inputs.sandbox.userns_uids),
                            ("gids", maps[1], inputs.sandbox.userns_gids)):
        if [list(m) for m in mine] != [list(m) for m in pods]:
            raise invalid(f"{USERNS}.{key}", f"{mine} differ from the pod's mappings {pods}")


def _id_mappings(mappings) -> list[dict[str, int]]:
    return [{"containerID": c, "hostID": h, "size": n} for c, h, n in mappings]


def with_user_namespace(build: SpecBuild, inputs: SpecInputs) -> None:
    """The pod's mappings on linux and on every bind mount: the runtime
    makes those idmapped mounts through the pod's user namespace, so a
    volume's files keep their on-disk owners as the container sees them
    (container root writes uid 0 on disk) and nothing is chowned."""
    if "user" not in inputs.sandbox.pins:
        return
    uids = _id_mappings(inputs.sandbox.userns_uids)
    gids = _id_mappings(inputs.sandbox.userns_gids)
    build.linux["uidMappings"] = uids
    build.linux["gidMappings"] = gids
    for m in build.spec.get("mounts") or []:
        if m.get("type") == "bind" or "bind" in m.get("options", []) \
                or "rbind" in m.get("options", []):
            m["uidMappings"] = [dict(u) for u in uids]
            m["gidMappings"] = [dict(g) for g in gids]


def with_namespaces(build: SpecBuild, inputs: SpecInputs) -> None:
    _check_pod_mode(inputs)
    namespaces = pod_namespace_joins(inputs.sandbox.pins)
    pid = pid_namespace(inputs)
    if pid:
        namespaces.append(pid)
    namespaces += [_ns("mount"), _ns("cgroup")]
    check_container_userns(inputs)
    with_user_namespace(build, inputs)
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
