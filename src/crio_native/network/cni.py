"""Running a CNI network configuration list against a network namespace
(CNI spec 1.0: ADD, DEL, CHECK; spec 1.1: STATUS, GC, used only for configs
that declare cniVersion 1.1.0 or later; plugins are executables found in the
plugin directories, fed the network config on stdin and the rest in CNI_*
variables).

Each ADD result is cached on disk, with the CNI_ARGS and capability arguments
it was given, so DEL and CHECK get the same arguments as ADD (as the spec
asks) even after a daemon restart, and GC can find attachments no pod owns."""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crio_native import tracing
from crio_native.errors import FailedPrecondition, Internal
from crio_native.logsetup import fields
from crio_native.network.cni_config import (NetworkConfigFile, find_network_config,
                                            version_at_least)
from crio_native.state.files import atomic_write_json

log = logging.getLogger(__name__)

PLUGIN_TIMEOUT_SECONDS = 60.0
CHECK_MIN_VERSION = "0.4.0"     # CHECK came with spec 0.4.0
STATUS_GC_MIN_VERSION = "1.1.0"
VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments"   # GC's stdin key (spec 1.1)


class PluginError(Internal):
    """A plugin failed; the message carries the plugin's own code and msg."""


@dataclass
class Attachment:
    """Who is being attached: the CNI_* identity of one pod interface."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)          # CNI_ARGS
    capability_args: dict[str, Any] = field(default_factory=dict)  # runtimeConfig

    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args.items())


@dataclass
class NetworkList:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    source: str

    @classmethod
    def load(cls, network_dir: str, wanted: str = "") -> "NetworkList":
        return cls.from_file(find_network_config(network_dir, wanted))

    @classmethod
    def from_file(cls, found: NetworkConfigFile) -> "NetworkList":
        doc = json.loads(found.path.read_text())
        plugins = doc["plugins"] if found.is_list else [
            {k: v for k, v in doc.items() if k not in ("cniVersion", "name")}]
        return cls(found.name, found.cni_version or "1.0.0", plugins, str(found.path))


class CNI:
    def __init__(self, plugin_dirs: list[str], cache_dir: str):
        self.plugin_dirs = plugin_dirs
        self.cache_dir = Path(cache_dir)

    # ---- public operations -------------------------------------------------

    def add(self, net: NetworkList, att: Attachment) -> dict[str, Any]:
        with tracing.span("cni.add", **_span_attributes(net, att)):
            result: dict[str, Any] | None = None
            for plugin in net.plugins:
                result = self._exec(net, plugin, "ADD", att, result)
            final = result or {"cniVersion": net.cni_version}
            self._cache(net, att, final)
            return final

    def check(self, net: NetworkList, att: Attachment) -> None:
        """CHECK through the chain with the cached ADD result as prevResult;
        raises PluginError with the first plugin's complaint."""
        if not version_at_least(net.cni_version, CHECK_MIN_VERSION):
            raise FailedPrecondition(
                f"CNI network {net.name!r} is cniVersion {net.cni_version}: CHECK needs "
                f"{CHECK_MIN_VERSION} or later")
        entry = self.cached_entry(net.name, att)
        if entry is None:
            raise FailedPrecondition(
                f"CNI network {net.name!r}: no cached ADD result for {att.container_id} "
                f"{att.ifname}, nothing to CHECK")
        att = _as_added(att, entry)
        for plugin in net.plugins:
            self._exec(net, plugin, "CHECK", att, entry["result"])

    def status(self, net: NetworkList) -> None:
        """CNI STATUS of every plugin in order (spec 1.1); a no-op for older
        configs, as libcni does.  Raises PluginError when one is not ready."""
        if not version_at_least(net.cni_version, STATUS_GC_MIN_VERSION):
            return
        for plugin in net.plugins:
            self._exec(net, plugin, "STATUS", None, None)

    def gc(self, net: NetworkList, valid: set[tuple[str, str]]) -> list[str]:
        """Garbage-collect `net`: DEL every cached attachment of it whose
        (container id, ifname) is not in `valid`, then, for spec 1.1 configs,
        run GC through the chain with the valid attachments (what libcni's
        GCNetworkList does).  Returns the problems met; never raises for one."""
        problems: list[str] = []
        for entry in self.cached_entries(net.name):
            key = (entry.get("containerId", ""), entry.get("ifName", ""))
            if key in valid:
                continue
            log.info("CNI GC: deleting stale attachment", extra=fields(
                network=net.name, container=key[0], ifname=key[1]))
            try:
                self.delete(net, Attachment(container_id=key[0], ifname=key[1],
                                            netns=entry.get("netns", "")))
            except (PluginError, FailedPrecondition) as e:
                problems.append(f"DEL of stale attachment {key[0]} {key[1]}: {e}")
        if version_at_least(net.cni_version, STATUS_GC_MIN_VERSION):
            attachments = [{"containerID": c, "ifname": i} for c, i in sorted(valid)]
            for plugin in net.plugins:
                try:
                    self._exec(net, plugin, "GC", None, None,
                               extra={VALID_ATTACHMENTS_KEY: attachments})
                except (PluginError, FailedPrecondition) as e:
                    problems.append(str(e))
        for problem in problems:
            log.warning("CNI GC problem", extra=fields(network=net.name, error=problem))
        return problems

    def delete(self, net: NetworkList, att: Attachment) -> None:
        """DEL through the chain in reverse; every plugin runs even if one fails
        (so a half-added pod releases what it can), then the first error is raised."""
        with tracing.span("cni.del", **_span_attributes(net, att)):
            self._delete(net, att)

    def _delete(self, net: NetworkList, att: Attachment) -> None:
        entry = self.cached_entry(net.name, att)
        cached = entry["result"] if entry else None
        if entry:
            att = _as_added(att, entry)
        first_error: Exception | None = None
        for plugin in reversed(net.plugins):
            try:
                self._exec(net, plugin, "DEL", att, cached)
            except PluginError as e:
                log.warning("CNI DEL failed", extra=fields(plugin=plugin.get("type"), error=str(e)))
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        self._cache_path(net.name, att).unlink(missing_ok=True)

    def cached_result(self, network: str, att: Attachment) -> dict[str, Any] | None:
        entry = self.cached_entry(network, att)
        return entry["result"] if entry else None

    def cached_entry(self, network: str, att: Attachment) -> dict[str, Any] | None:
        try:
            return json.loads(self._cache_path(network, att).read_text())
        except FileNotFoundError:
            return None

    def cached_network_names(self) -> set[str]:
        names = set()
        for path in self.cache_dir.glob("*.json"):
            try:
                names.add(json.loads(path.read_text())["networkName"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return names

    def cached_entries(self, network: str) -> list[dict[str, Any]]:
        """Every cached ADD of `network` (unreadable files are logged and skipped)."""
        out = []
        for path in sorted(self.cache_dir.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                log.warning("unreadable CNI cache file", extra=fields(path=str(path), error=str(e)))
                continue
            if isinstance(entry, dict) and entry.get("networkName") == network:
                out.append(entry)
        return out

    # ---- mechanics ---------------------------------------------------------

    def _cache_path(self, network: str, att: Attachment) -> Path:
        return self.cache_dir / f"{network}-{att.container_id}-{att.ifname}.json"

    def _cache(self, net: NetworkList, att: Attachment, result: dict[str, Any]) -> None:
        atomic_write_json(self._cache_path(net.name, att), {
            "containerId": att.container_id, "ifName": att.ifname, "networkName": net.name,
            "netns": att.netns, "cniArgs": att.args, "capabilityArgs": att.capability_args,
            "result": result})

    def find_plugin(self, plugin_type: str) -> str:
        if "/" in plugin_type or not plugin_type:
            raise FailedPrecondition(f"CNI plugin type {plugin_type!r} is not a plain name")
        for d in self.plugin_dirs:
            candidate = os.path.join(d, plugin_type)
            if os.access(candidate, os.X_OK):
                return candidate
        raise FailedPrecondition(
            f"CNI plugin {plugin_type!r} not found in {', '.join(self.plugin_dirs)}")

    def _stdin(self, net: NetworkList, plugin: dict[str, Any], att: Attachment | None,
               prev: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> bytes:
        conf = dict(plugin)
        conf["cniVersion"] = net.cni_version
        conf["name"] = net.name
        wanted = [c for c, on in plugin.get("capabilities", {}).items() if on]
        caps = att.capability_args if att is not None else {}
        runtime_config = {c: caps[c] for c in wanted if c in caps}
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
        if prev is not None:
            conf["prevResult"] = prev
        conf.update(extra or {})
        return json.dumps(conf).encode()

    def _exec(self, net: NetworkList, plugin: dict[str, Any], command: str,
              att: Attachment | None, prev: dict[str, Any] | None,
              extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One plugin, one command.  STATUS and GC concern the network, not an
        attachment: they get no CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME or CNI_ARGS."""
        plugin_type = plugin.get("type", "")
        env = {"CNI_COMMAND": command, "CNI_PATH": os.pathsep.join(self.plugin_dirs),
               "PATH": os.environ.get("PATH", "")}
        if att is not None:
            env.update({"CNI_CONTAINERID": att.container_id, "CNI_NETNS": att.netns,
                        "CNI_IFNAME": att.ifname, "CNI_ARGS": att.cni_args()})
        proc = subprocess.run([self.find_plugin(plugin_type)], input=self._stdin(
            net, plugin, att, prev, extra), env=env, capture_output=True,
            timeout=PLUGIN_TIMEOUT_SECONDS, close_fds=True)
        if proc.returncode != 0:
            raise PluginError(f"CNI plugin {plugin_type} {command} failed: "
                              f"{_plugin_message(proc.stdout, proc.stderr)}")
        if command != "ADD":
            return prev
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise PluginError(f"CNI plugin {plugin_type} ADD printed no JSON result") from None


def _span_attributes(net: NetworkList, att: Attachment) -> dict[str, str]:
    return {"cni.network": net.name, "cni.ifname": att.ifname,
            "cni.container_id": att.container_id}


def _plugin_message(stdout: bytes, stderr: bytes) -> str:
    try:
        err = json.loads(stdout)
        text = err.get("msg", "")
        if err.get("details"):
            text += f" ({err['details']})"
        return f"code {err.get('code')}: {text}"
    except (ValueError, AttributeError):
        return (stderr or stdout).decode(errors="replace").strip() or "no message"


def _as_added(att: Attachment, entry: dict[str, Any]) -> Attachment:
    """`att` with the CNI_ARGS and capability arguments its ADD was given:
    DEL and CHECK must see what ADD saw (an ipRanges from a pod CIDR that has
    changed since, or that a restarted daemon does not know yet)."""
    return Attachment(container_id=att.container_id, netns=att.netns or entry.get("netns", ""),
                      ifname=att.ifname, args=entry.get("cniArgs") or att.args,
                      capability_args=entry.get("capabilityArgs") or att.capability_args)


def ip_ranges_from_cidr(pod_cidr: str) -> list[list[dict[str, str]]]:
    """The `ipRanges` capability argument for a pod CIDR as UpdateRuntimeConfig
    gives it ("10.244.1.0/24" or, dual-stack, "10.244.1.0/24,fd00:1::/64"):
    one range set per CIDR, so host-local hands out one address of each family."""
    ranges = []
    for part in filter(None, (p.strip() for p in pod_cidr.split(","))):
        ranges.append([{"subnet": str(ipaddress.ip_network(part, strict=False))}])
    return ranges


def pod_ips(result: dict[str, Any] | None) -> list[str]:
    """IP addresses (without prefix length) of a CNI 1.0 / 0.4 result, v4 first."""
    if not result:
        return []
    ips = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
    return sorted(ips, key=lambda a: ":" in a)
