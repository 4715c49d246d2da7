"""Running a CNI network configuration list against a network namespace
(CNI spec 1.0: ADD, DEL, CHECK; plugins are executables found in the plugin
directories, fed the network config on stdin and the rest in CNI_* variables).

Each ADD result is cached on disk so DEL works after a daemon restart."""
from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crio_native.errors import FailedPrecondition, Internal
from crio_native.logsetup import fields
from crio_native.network.cni_config import find_network_config
from crio_native.state.files import atomic_write_json

log = logging.getLogger(__name__)

PLUGIN_TIMEOUT_SECONDS = 60.0


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
        found = find_network_config(network_dir, wanted)
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
        result: dict[str, Any] | None = None
        for plugin in net.plugins:
            result = self._exec(net, plugin, "ADD", att, result)
        final = result or {"cniVersion": net.cni_version}
        self._cache(net, att, final)
        return final

    def check(self, net: NetworkList, att: Attachment) -> None:
        cached = self.cached_result(net.name, att)
        for plugin in net.plugins:
            self._exec(net, plugin, "CHECK", att, cached)

    def delete(self, net: NetworkList, att: Attachment) -> None:
        """DEL through the chain in reverse; every plugin runs even if one fails
        (so a half-added pod releases what it can), then the first error is raised."""
        cached = self.cached_result(net.name, att)
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
        try:
            return json.loads(self._cache_path(network, att).read_text())["result"]
        except FileNotFoundError:
            return None

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

    def _stdin(self, net: NetworkList, plugin: dict[str, Any], att: Attachment,
               prev: dict[str, Any] | None) -> bytes:
        conf = dict(plugin)
        conf["cniVersion"] = net.cni_version
        conf["name"] = net.name
        wanted = [c for c, on in plugin.get("capabilities", {}).items() if on]
        runtime_config = {c: att.capability_args[c] for c in wanted if c in att.capability_args}
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
        if prev is not None:
            conf["prevResult"] = prev
        return json.dumps(conf).encode()

    def _exec(self, net: NetworkList, plugin: dict[str, Any], command: str, att: Attachment,
              prev: dict[str, Any] | None) -> dict[str, Any] | None:
        plugin_type = plugin.get("type", "")
        env = {
            "CNI_COMMAND": command, "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname, "CNI_ARGS": att.cni_args(),
            "CNI_PATH": os.pathsep.join(self.plugin_dirs), "PATH": os.environ.get("PATH", ""),
        }
        proc = subprocess.run([self.find_plugin(plugin_type)], input=self._stdin(
            net, plugin, att, prev), env=env, capture_output=True,
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


def _plugin_message(stdout: bytes, stderr: bytes) -> str:
    try:
        err = json.loads(stdout)
        text = err.get("msg", "")
        if err.get("details"):
            text += f" ({err['details']})"
        return f"code {err.get('code')}: {text}"
    except (ValueError, AttributeError):
        return (stderr or stdout).decode(errors="replace").strip() or "no message"


def pod_ips(result: dict[str, Any] | None) -> list[str]:
    """IP addresses (without prefix length) of a CNI 1.0 / 0.4 result, v4 first."""
    if not result:
        return []
    ips = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
    return sorted(ips, key=lambda a: ":" in a)
