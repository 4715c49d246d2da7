"""Where each effective configuration key came from: the embedded default,
a file (the main one or a drop-in) or a command-line flag, for
`crio-native status` (the daemon's verbose Status carries it)."""
from __future__ import annotations

import dataclasses
from typing import Any

from crio_native.config.load import EMBEDDED, LoadedConfig


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _origin(key: str, origins: dict[str, str]) -> str:
    """The source that set `key` or the nearest table above it (a whole
    handler table given in a drop-in sets every key in it)."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        found = origins.get(".".join(parts[:n]))
        if found is not None:
            return found
    return EMBEDDED


def config_with_origins(loaded: LoadedConfig) -> dict[str, dict[str, Any]]:
    """{dotted key: {"value": ..., "origin": ...}} for every leaf key."""
    leaves = _leaves(dataclasses.asdict(loaded.config), "")
    return {key: {"value": value, "origin": _origin(key, loaded.origins)}
            for key, value in sorted(leaves.items())}
