"""Checks of request strings that become names: pod and container
metadata, shared by RunPodSandbox and CreateContainer at the edge."""
from __future__ import annotations

from crio_native.errors import InvalidArgument


def control_character(text: str) -> str | None:
    """The first C0/C1 control character in `text` (NUL, newline, escape,
    DEL...), or None.  Such a name would break the log lines, CNI_ARGS and
    hostnames it is written into."""
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0:
            return char
    return None


def check_name(rpc: str, path: str, value: str, *, separators: str = "") -> None:
    """InvalidArgument naming `path` if `value` holds a control character or
    one of `separators` (characters with a meaning where the name goes)."""
    char = control_character(value)
    if char is not None:
        raise InvalidArgument(f"{rpc}: {path}: contains the control character "
                              f"{char!r}: {value!r}")
    for sep in separators:
        if sep in value:
            raise InvalidArgument(f"{rpc}: {path}: contains {sep!r}, a separator where "
                                  f"the name is used: {value!r}")
