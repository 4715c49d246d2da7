"""Container Device Interface: CDIDevice names and cdi.k8s.io/* annotations
resolved against the spec files in the CDI directories, then applied as
device nodes, mounts, env, hooks and extra groups.

Spec files are JSON.  PyYAML is not a dependency, so a .yaml/.yml file is
read only when its content is JSON (which is valid YAML); other YAML files
are skipped with a warning.  Directories are read in order and a later one
wins for a device both define (/var/run/cdi over /etc/cdi, as the CDI
registry orders them); within a directory, files go in lexical order."""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from crio_native.spec.devices import add_device, check_permissions
from crio_native.spec.inputs import DeviceNode, SpecBuild, SpecInputs, invalid
from crio_native.spec.process import merge_env

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "cdi.k8s.io/"
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)="
                        r"([A-Za-z0-9][A-Za-z0-9_.:-]*)$")
_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass
class CdiDevice:
    kind: str
    name: str
    edits: dict[str, Any]
    spec_edits: dict[str, Any]
    source: str

    @property
    def qualified(self) -> str:
        return f"{self.kind}={self.name}"


@dataclass
class CdiRegistry:
    devices: dict[str, CdiDevice] = field(default_factory=dict)

    @classmethod
    def load(cls, dirs: Sequence[str]) -> "CdiRegistry":
        reg = cls()
        for d in dirs:
            for path in _spec_files(d):
                doc = _read_spec(path)
                if doc is not None:
                    reg.add_spec(doc, path)
        return reg

    def add_spec(self, doc: dict[str, Any], source: str) -> None:
        kind = doc.get("kind")
        if not isinstance(kind, str) or "/" not in kind:
            log.warning("CDI spec %s: no valid kind, skipped", source)
            return
        spec_edits = doc.get("containerEdits") or {}
        for dev in doc.get("devices") or []:
            if isinstance(dev, dict) and isinstance(dev.get("name"), str):
                d = CdiDevice(kind, dev["name"], dev.get("containerEdits") or {},
                              spec_edits, source)
                self.devices[d.qualified] = d


def _spec_files(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names if n.endswith(_SUFFIXES)]


def _read_spec(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError) as e:
        log.warning("CDI spec %s: not readable as JSON (%s), skipped", path, e)
        return None
    return doc if isinstance(doc, dict) else None


def requested_devices(inputs: SpecInputs) -> list[tuple[str, str]]:
    """(qualified name, request field) from CDI_devices, then annotations."""
    out = [(d.name, f"CDI_devices[{i}].name") for i, d in enumerate(inputs.config.CDI_devices)]
    for key in sorted(inputs.config.annotations):
        if key.startswith(ANNOTATION_PREFIX):
            for name in inputs.config.annotations[key].split(","):
                if name.strip():
                    out.append((name.strip(), f"annotations[{key!r}]"))
    seen: set[str] = set()
    unique = []
    for n, f in out:
        if n not in seen:
            seen.add(n)
            unique.append((n, f))
    return unique


def _node(entry: dict[str, Any], inputs: SpecInputs, where: str) -> tuple[DeviceNode, str, str]:
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise invalid(where, f"CDI device node without an absolute path: {path!r}")
    host = entry.get("hostPath") or path
    access = check_permissions(entry.get("permissions") or "rwm", where)
    if entry.get("type") == "p" or entry.get("major") is not None:
        node = DeviceNode(path, entry.get("type") or "c", int(entry.get("major") or 0),
                          int(entry.get("minor") or 0))
    else:
        found = inputs.lookup_device(host)
        if not found:
            raise invalid(where, f"CDI device node {host}: no such device")
        node = found[0]
    node = DeviceNode(path, entry.get("type") or node.type, node.major, node.minor,
                      int(entry.get("fileMode") or node.file_mode),
                      int(entry.get("uid", node.uid)), int(entry.get("gid", node.gid)))
    return node, path, access


def apply_edits(build: SpecBuild, inputs: SpecInputs, edits: dict[str, Any], where: str) -> None:
    for entry in edits.get("deviceNodes") or []:
        node, path, access = _node(entry, inputs, where)
        add_device(build, node, path, access)
    for m in edits.get("mounts") or []:
        dest, src = m.get("containerPath"), m.get("hostPath")
        if not (isinstance(dest, str) and dest.startswith("/") and isinstance(src, str)):
            raise invalid(where, f"CDI mount needs hostPath and an absolute containerPath: {m}")
        build.spec["mounts"].append({"destination": dest, "type": m.get("type") or "bind",
                                     "source": src, "options": list(m.get("options") or [])})
    env = [e for e in edits.get("env") or [] if isinstance(e, str) and "=" in e]
    if env:
        build.process["env"] = merge_env(build.process.get("env", []), env)
    for hook in edits.get("hooks") or []:
        add_hook(build, hook, where)
    gids = [int(g) for g in edits.get("additionalGids") or []]
    if gids:
        user = build.process.setdefault("user", {"uid": 0, "gid": 0})
        user["additionalGids"] = list(dict.fromkeys(list(user.get("additionalGids", [])) + gids))


def add_hook(build: SpecBuild, hook: dict[str, Any], where: str) -> None:
    name = hook.get("hookName")
    if name not in HOOK_NAMES:
        raise invalid(where, f"CDI hook with unknown hookName {name!r}")
    if not isinstance(hook.get("path"), str) or not hook["path"].startswith("/"):
        raise invalid(where, f"CDI hook needs an absolute path, got {hook.get('path')!r}")
    oci = {"path": hook["path"]}
    oci.update({k: hook[k] for k in ("args", "env", "timeout") if hook.get(k)})
    build.spec.setdefault("hooks", {}).setdefault(name, []).append(oci)


def resolve(registry: CdiRegistry, names: Iterable[tuple[str, str]]) -> list[tuple[CdiDevice, str]]:
    out = []
    for name, where in names:
        if not _QUALIFIED.match(name):
            raise invalid(where, f"{name!r} is not a CDI device name like vendor.com/class=dev")
        dev = registry.devices.get(name)
        if dev is None:
            raise invalid(where, f"unknown CDI device {name!r}")
        out.append((dev, where))
    return out


def with_cdi_devices(build: SpecBuild, inputs: SpecInputs) -> None:
    """Runs after with_env and with_user (it extends both).  Each spec's
    common edits are applied once, before its devices' own."""
    names = requested_devices(inputs)
    if not names:
        return
    devices = resolve(CdiRegistry.load(inputs.cdi_dirs), names)
    applied_specs: set[str] = set()
    for dev, where in devices:
        if dev.source not in applied_specs:
            applied_specs.add(dev.source)
            apply_edits(build, inputs, dev.spec_edits, where)
        apply_edits(build, inputs, dev.edits, where)
