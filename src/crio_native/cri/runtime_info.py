"""RuntimeService calls about the runtime itself: Version, Status,
RuntimeConfig and UpdateRuntimeConfig."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from pathlib import Path

from crio_native import __version__
from crio_native._native import seccomp, selinux
from crio_native._proto import api_pb2
from crio_native.config.origins import config_with_origins
from crio_native.context import DaemonContext, handlers_of
from crio_native.errors import InvalidArgument
from crio_native.linux import apparmor, landlock
from crio_native.logsetup import fields
from crio_native.network.cni_config import NoNetworkConfig, find_network_config
from crio_native.state.files import atomic_write_json, read_json

log = logging.getLogger(__name__)

RUNTIME_NAME = "crio-native"
# The kubelet's CRI client sends and expects this API version in VersionRequest.
KUBELET_API_VERSION = "0.1.0"
RUNTIME_API_VERSION = "v1"

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"


def version(request: api_pb2.VersionRequest, context) -> api_pb2.VersionResponse:
    return api_pb2.VersionResponse(
        version=KUBELET_API_VERSION,
        runtime_name=RUNTIME_NAME,
        runtime_version=__version__,
        runtime_api_version=RUNTIME_API_VERSION,
    )


def network_condition(ctx: DaemonContext) -> api_pb2.RuntimeCondition:
    """From the sandbox manager's CNI config watcher (inotify, plus CNI STATUS
    for spec 1.1 configs); a plain directory scan before it exists."""
    watcher = getattr(ctx.sandboxes, "networks", None)
    if watcher is not None:
        ready, problem = watcher.readiness()
    else:
        net = ctx.config.network
        try:
            find_network_config(net.network_dir, net.cni_default_network)
            ready, problem = True, ""
        except NoNetworkConfig as e:
            ready, problem = False, str(e)
    if not ready:
        return api_pb2.RuntimeCondition(type=NETWORK_READY, status=False,
                                        reason=NETWORK_NOT_READY_REASON, message=problem)
    return api_pb2.RuntimeCondition(type=NETWORK_READY, status=True)


def verbose_info(ctx: DaemonContext) -> dict[str, str]:
    """Status(verbose)'s info: what `crio-native status` shows."""
    native = {"libseccomp": ".".join(map(str, seccomp.library_version())),
              "selinux_enabled": selinux.enabled(),
              "apparmor_enabled": apparmor.enabled(), "landlock_abi": landlock.abi_version()}
    return {
        "config": json.dumps(dataclasses.asdict(ctx.config), sort_keys=True),
        "config_origins": json.dumps(config_with_origins(ctx.loaded), sort_keys=True),
        "config_files": json.dumps(ctx.loaded.sources),
        "native": json.dumps(native, sort_keys=True),
        "pod_cidr": ctx.pod_cidr,
        "version": __version__,
        "summary": json.dumps(object_summary(ctx), sort_keys=True),
        "handler_security": json.dumps(handler_security(ctx), sort_keys=True),
    }


def handler_security(ctx: DaemonContext) -> dict[str, dict[str, object]]:
    """Per handler, the security features CRI's RuntimeHandlerFeatures has no
    field for: whether it applies AppArmor profiles, its Landlock ABI."""
    out: dict[str, dict[str, object]] = {}
    if ctx.handlers is None:
        return out
    for name in sorted(ctx.config.runtime.runtimes):
        try:
            features = handlers_of(ctx).get(name).features()
        except Exception:  # noqa: BLE001 - listed in runtime_handlers' log already
            continue
        out[name] = {"apparmor": features.apparmor, "landlock_abi": features.landlock_abi}
    return out


def object_summary(ctx: DaemonContext) -> dict[str, dict[str, int]]:
    """How many pods and containers there are, by state."""
    out: dict[str, dict[str, int]] = {"pods": {}, "containers": {}}
    if ctx.sandboxes is not None:
        for pod in ctx.sandboxes.store.all():
            out["pods"][pod.state] = out["pods"].get(pod.state, 0) + 1
    if ctx.containers is not None:
        for c in ctx.containers.store.all():
            out["containers"][c.state] = out["containers"].get(c.state, 0) + 1
    return out


def runtime_handlers(ctx: DaemonContext) -> list[api_pb2.RuntimeHandler]:
    """Every configured handler with what it really supports; the default
    handler is listed a second time under the empty name, as the kubelet
    looks it up that way for pods without a RuntimeClass."""
    out = []
    default = ctx.config.runtime.default_runtime
    for i, name in enumerate([default, *sorted(ctx.config.runtime.runtimes)]):
        entry = api_pb2.RuntimeHandler(name="" if i == 0 else name)
        try:
            features = handlers_of(ctx).get(name).features()
        except Exception:  # noqa: BLE001 - a broken handler is listed without features
            log.warning("runtime handler features unavailable", exc_info=True,
                        extra=fields(handler=name))
        else:
            entry.features.recursive_read_only_mounts = features.recursive_read_only_mounts
            entry.features.user_namespaces = features.user_namespaces
        out.append(entry)
    return out


def status(ctx: DaemonContext, request: api_pb2.StatusRequest, context) -> api_pb2.StatusResponse:
    runtime = api_pb2.RuntimeCondition(type=RUNTIME_READY, status=True)
    response = api_pb2.StatusResponse(
        status=api_pb2.RuntimeStatus(conditions=[runtime, network_condition(ctx)]),
        features=api_pb2.RuntimeFeatures(supplemental_groups_policy=True))
    if ctx.handlers is not None:
        response.runtime_handlers.extend(runtime_handlers(ctx))
    if request.verbose:
        response.info.update(verbose_info(ctx))
    return response


def runtime_config(ctx: DaemonContext, request, context) -> api_pb2.RuntimeConfigResponse:
    driver = {"systemd": api_pb2.SYSTEMD, "cgroupfs": api_pb2.CGROUPFS}[
        ctx.config.runtime.cgroup_manager]
    return api_pb2.RuntimeConfigResponse(
        linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=driver))


def pod_cidr_file(ctx: DaemonContext) -> Path:
    return Path(ctx.config.root) / "runtime-config.json"


def load_pod_cidr(ctx: DaemonContext) -> None:
    """The pod CIDR the last UpdateRuntimeConfig gave, read at start-up."""
    try:
        ctx.pod_cidr = str(read_json(pod_cidr_file(ctx)).get("pod_cidr", ""))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError) as e:
        log.error("unreadable runtime config record", extra=fields(
            path=str(pod_cidr_file(ctx)), error=str(e)))


def update_runtime_config(ctx: DaemonContext, request: api_pb2.UpdateRuntimeConfigRequest,
                          context) -> api_pb2.UpdateRuntimeConfigResponse:
    cidr = request.runtime_config.network_config.pod_cidr
    for part in filter(None, (p.strip() for p in cidr.split(","))):
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise InvalidArgument(
                f"UpdateRuntimeConfig: runtime_config.network_config.pod_cidr: "
                f"not a CIDR: {part!r}") from None
    with ctx.lock:
        if cidr and cidr != ctx.pod_cidr:
            log.info("pod CIDR updated", extra=fields(pod_cidr=cidr))
            # kept on disk: the kubelet sends it again only when it changes
            atomic_write_json(pod_cidr_file(ctx), {"pod_cidr": cidr})
            ctx.pod_cidr = cidr
    return api_pb2.UpdateRuntimeConfigResponse()


def rpcs(ctx: DaemonContext) -> dict:
    return {
        "Version": version,
        "Status": lambda req, c: status(ctx, req, c),
        "RuntimeConfig": lambda req, c: runtime_config(ctx, req, c),
        "UpdateRuntimeConfig": lambda req, c: update_runtime_config(ctx, req, c),
    }
