"""The container_id every per-container RPC carries."""
from __future__ import annotations

from crio_native.errors import InvalidArgument


def require_id(rpc: str, container_id: str) -> str:
    if not container_id:
        raise InvalidArgument(f"{rpc}: container_id: must not be empty")
    return container_id
