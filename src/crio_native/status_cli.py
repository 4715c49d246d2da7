"""`crio-native status`: asks the running daemon, over its CRI socket
(Status with verbose), for its handlers and their features, a count of its
pods and containers, and its effective configuration with where each key
came from; `--json` for machines."""
from __future__ import annotations

import json
import sys
from typing import Any

from crio_native.config.load import LoadedConfig

TIMEOUT = 10.0


def daemon_status(socket_path: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The daemon's status as one JSON-able object; grpc.RpcError when it
    does not answer."""
    import grpc

    from crio_native._proto import api_pb2, api_pb2_grpc

    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        resp = api_pb2_grpc.RuntimeServiceStub(channel).Status(
            api_pb2.StatusRequest(verbose=True), timeout=timeout)
    info = dict(resp.info)
    # AppArmor and the Landlock ABI per handler (no CRI field for them)
    security = json.loads(info.get("handler_security", "{}"))
    default = json.loads(info.get("config", "{}")).get("runtime", {}).get("default_runtime", "")
    return {
        "socket": socket_path,
        "version": info.get("version", ""),
        "conditions": {c.type: c.status for c in resp.status.conditions},
        "handlers": {h.name or "(default)": {
            "recursive_read_only_mounts": h.features.recursive_read_only_mounts,
            "user_namespaces": h.features.user_namespaces,
            **security.get(h.name or default, {})} for h in resp.runtime_handlers},
        "summary": json.loads(info.get("summary", "{}")),
        "config_files": json.loads(info.get("config_files", "[]")),
        "config": json.loads(info.get("config_origins", "{}")),
    }


def _text(doc: dict[str, Any]) -> str:
    lines = [f"crio-native {doc['version']} on {doc['socket']}",
             "conditions: " + " ".join(f"{k}={str(v).lower()}"
                                       for k, v in doc["conditions"].items()),
             "handlers:"]
    for name, features in doc["handlers"].items():
        flags = " ".join(f"{k}={str(v).lower()}" for k, v in features.items())
        lines.append(f"  {name:<12} {flags}")
    for kind in ("pods", "containers"):
        counts = doc["summary"].get(kind) or {}
        lines.append(f"{kind}: " + (" ".join(f"{s}={n}" for s, n in sorted(counts.items()))
                                    or "none"))
    lines.append("config files: " + (", ".join(doc["config_files"]) or "none"))
    lines.append("configuration (key = value  # where it came from):")
    for key, entry in doc["config"].items():
        lines.append(f"  {key} = {json.dumps(entry['value'])}  # {entry['origin']}")
    return "\n".join(lines) + "\n"


def run_status(loaded: LoadedConfig, socket_path: str | None, as_json: bool) -> int:
    import grpc

    target = socket_path or loaded.config.api.listen
    try:
        doc = daemon_status(target)
    except grpc.RpcError as e:
        print(f"crio-native status: no answer from the daemon on {target}: "
              f"{e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n" if as_json
                     else _text(doc))
    return 0
