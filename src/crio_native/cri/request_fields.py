"""Checks every request passes at the edge, before its RPC runs: what
protobuf itself lets through but nothing below can use.

- An enum field holding a number its enum does not define.  proto3 enums
  are open, so Signal 99 or NamespaceMode 1048576 arrive as plain ints;
  below the edge they would fail as an unknown name (INTERNAL) or, worse,
  be taken for some default.
- A NUL byte in a string.  Request strings become paths, argv and env
  entries, CNI_ARGS, cgroup and sysctl writes, label and record fields;
  none of those can hold a NUL (the kernel cuts the string there or
  refuses it with EINVAL, and Python raises ValueError).  Free text is
  exempt: annotation values, and credentials, which pass through opaque.

Each error names the RPC and the field path, e.g.
"RunPodSandbox: config.metadata.name: contains a NUL byte"."""
from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from crio_native.errors import InvalidArgument

# (message, field) pairs whose strings are free text, NUL bytes included.
_FREE_TEXT_FIELDS = frozenset({
    ("runtime.v1.AuthConfig", "username"), ("runtime.v1.AuthConfig", "password"),
    ("runtime.v1.AuthConfig", "auth"), ("runtime.v1.AuthConfig", "identity_token"),
    ("runtime.v1.AuthConfig", "registry_token"),
})
# Map fields whose values are free text (their keys are names all the same).
_FREE_TEXT_MAPS = frozenset({"annotations"})


def check_request(rpc: str, request: object) -> None:
    """InvalidArgument for the first enum or string field of `request` that
    no RPC could act on (see the module doc).  `rpc` is the method name.
    Anything but a protobuf message (a test's stand-in) passes as it is."""
    if isinstance(request, Message):
        _check_message(rpc, request, "")


def _check_message(rpc: str, message: Message, prefix: str) -> None:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if _is_map(field):
            _check_map(rpc, field, value, path)
        elif field.is_repeated:
            for i, item in enumerate(value):
                _check_value(rpc, message.DESCRIPTOR, field, item, f"{path}[{i}]")
        else:
            _check_value(rpc, message.DESCRIPTOR, field, value, path)


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def _check_map(rpc: str, field: FieldDescriptor, entries: Any, path: str) -> None:
    entry = field.message_type
    value_field = entry.fields_by_name["value"]
    for key in sorted(entries):
        where = f"{path}[{key!r}]"
        if isinstance(key, str) and "\0" in key:
            raise _invalid(rpc, path, f"key {key!r} contains a NUL byte")
        value = entries[key]
        if value_field.type == FieldDescriptor.TYPE_STRING and field.name in _FREE_TEXT_MAPS:
            continue
        _check_value(rpc, entry, value_field, value, where)


def _check_value(rpc: str, owner: Descriptor, field: FieldDescriptor, value: Any,
                 path: str) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _check_message(rpc, value, f"{path}.")
    elif field.type == FieldDescriptor.TYPE_ENUM:
        _check_enum(rpc, field, value, path)
    elif field.type == FieldDescriptor.TYPE_STRING:
        if "\0" in value and (owner.full_name, field.name) not in _FREE_TEXT_FIELDS:
            raise _invalid(rpc, path, "contains a NUL byte")


def _check_enum(rpc: str, field: FieldDescriptor, value: int, path: str) -> None:
    enum = field.enum_type
    if value not in enum.values_by_number:
        known = sorted(enum.values_by_number)
        span = f"{known[0]}..{known[-1]}" if known == list(range(known[0], known[-1] + 1)) \
            else ", ".join(map(str, known))
        raise _invalid(rpc, path, f"{value} is not a {enum.name} value (want {span})")


def _invalid(rpc: str, path: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"{rpc}: {path}: {reason}")
