"""Checked readers of config.json fields, shared by the plan builders.  A
field that is missing reads as empty; one of the wrong kind raises
InvalidArgument naming it, e.g. `config.json: linux.namespaces[2].path: ...`."""
from __future__ import annotations

from typing import Any

from crio_native.errors import InvalidArgument


def invalid(field: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field}: {reason}")


def object_at(spec: dict, key: str, field: str) -> dict:
    v = spec.get(key) or {}
    if not isinstance(v, dict):
        raise invalid(field, "must be an object")
    return v


def array_at(obj: dict, key: str, field: str) -> list:
    v = obj.get(key) or []
    if not isinstance(v, list):
        raise invalid(field, "must be an array")
    return v


def abs_path(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise invalid(field, f"must be an absolute path, got {value!r}")
    if ".." in value.split("/"):
        raise invalid(field, f"{value!r} must not contain '..'")
    return value


def u32(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise invalid(field, f"must be an unsigned 32-bit integer, got {value!r}")
    return value
