"""Finding the CNI network configuration the way CNI-using runtimes do: the
lexically first .conflist / .conf / .json file in the network directory that
parses as a valid network config (CNI spec, "Network configuration")."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CONFIG_SUFFIXES = (".conflist", ".conf", ".json")


@dataclass(frozen=True)
class NetworkConfigFile:
    path: Path
    name: str
    cni_version: str
    is_list: bool


class NoNetworkConfig(Exception):
    """No usable CNI config; the message says what was looked at."""


def _parse(path: Path) -> NetworkConfigFile:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a JSON object")
    is_list = path.suffix == ".conflist" or "plugins" in doc
    if is_list:
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise ValueError(f"{path}: a network list needs a non-empty 'plugins' array")
        if not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in plugins):
            raise ValueError(f"{path}: every plugin needs a 'type'")
    elif not isinstance(doc.get("type"), str):
        raise ValueError(f"{path}: a network config needs a 'type'")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: missing 'name'")
    return NetworkConfigFile(path=path, name=name, cni_version=str(doc.get("cniVersion", "")),
                             is_list=is_list)


def version_at_least(version: str, minimum: str) -> bool:
    """Whether CNI spec `version` ("1.0.0") is `minimum` or later; a version
    that does not parse counts as older (the spec's defaults are the oldest)."""
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))
    try:
        return parts(version) >= parts(minimum)
    except ValueError:
        return False


def find_network_config(network_dir: str, wanted_name: str = "") -> NetworkConfigFile:
    """The config to use, or NoNetworkConfig explaining why there is none."""
    directory = Path(network_dir)
    try:
        candidates = sorted(p for p in directory.iterdir()
                            if p.suffix in CONFIG_SUFFIXES and p.is_file())
    except FileNotFoundError:
        raise NoNetworkConfig(f"no CNI configuration: {network_dir} does not exist") from None
    problems = []
    for path in candidates:
        try:
            found = _parse(path)
        except ValueError as e:
            problems.append(str(e))
            continue
        if not wanted_name or found.name == wanted_name:
            return found
    what = f"named {wanted_name!r} " if wanted_name else ""
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise NoNetworkConfig(f"no valid CNI configuration {what}in {network_dir}{detail}")
