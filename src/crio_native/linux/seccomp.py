"""OCI `linux.seccomp` -> a BPF program (bytes) and seccomp(2) flags.

Policy only: the compilation itself is libseccomp through
crio_native._native.seccomp.  Like runc, syscall names this architecture does
not have are skipped, and a rule whose action equals the default is dropped
(libseccomp refuses it).

SCMP_ACT_NOTIFY (SECCOMP_RET_USER_NOTIF) rules make the filter a listener
one: it is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER and the notify fd
goes to the agent at `listenerPath` (runtime/builtin/seccomp_listener.py
builds what it is told; docs/runtime.md says when).
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only means something for such a
filter (the kernel refuses it without NEW_LISTENER): it is passed on with a
listener and ignored without one, as runc (libseccomp) and crun do."""
from __future__ import annotations

import ctypes
import dataclasses
import errno as errno_mod
import functools
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from crio_native.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_NOTIFY = 0x7FC00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

FIXED_ACTIONS = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
                 "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
                 "SCMP_ACT_LOG": ACT_LOG, "SCMP_ACT_ALLOW": ACT_ALLOW,
                 "SCMP_ACT_NOTIFY": ACT_NOTIFY}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
FLAG_TSYNC = 1
FLAG_NEW_LISTENER = 8
# Linux 5.19: once the agent has received a notification, the waiting
# process ignores non-fatal signals until it is answered (a signal before
# the receive still interrupts the call as usual).  Only with NEW_LISTENER.
FLAG_WAIT_KILLABLE_RECV = 32
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV}
# seccomp(2) operation
_SET_MODE_FILTER = 1
# sun_path holds 108 bytes, the NUL included.
LISTENER_PATH_MAX = 107
# The container process itself makes these calls once its filter is loaded
# and before the agent can answer: sendmsg hands the agent the notify fd and
# write reports READY to the runtime.  Notifying on them would hang the
# create (runc refuses write for the same reason).
NOTIFY_REFUSED = ("sendmsg", "write")


@dataclass(frozen=True)
class Filter:
    bpf: bytes
    flags: int
    # SCMP_ACT_NOTIFY is used: the agent's socket and its opaque metadata
    listener_path: str | None = None
    listener_metadata: str = ""


def _invalid(field: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field}: {reason}")


def action_from_name(name: Any, errno_ret: Any, field: str) -> int:
    if name in FIXED_ACTIONS:
        return FIXED_ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value = errno_mod.EPERM if errno_ret is None else errno_ret
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise _invalid(field, f"errnoRet must be in [0, 65535], got {value!r}")
        return (ACT_ERRNO if name == "SCMP_ACT_ERRNO" else ACT_TRACE) | value
    raise _invalid(field, f"unknown seccomp action {name!r}")


def _conditions(args: list, field: str) -> list[tuple[int, int, int, int]]:
    out = []
    for i, a in enumerate(args):
        f = f"{field}[{i}]"
        if not isinstance(a, dict) or a.get("op") not in OPS:
            raise _invalid(f"{f}.op",
                           f"unknown comparison {a.get('op') if isinstance(a, dict) else a!r}")
        index = a.get("index")
        if not isinstance(index, int) or not 0 <= index < 6:
            raise _invalid(f"{f}.index", f"must be in [0, 5], got {index!r}")
        out.append((index, OPS[a["op"]], int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    return out


def _split_conditions(conds: list) -> list[list]:
    """libseccomp takes one comparison per argument in a rule; runc turns
    repeated comparisons of one argument into one rule each (an OR)."""
    indexes = [c[0] for c in conds]
    if len(indexes) == len(set(indexes)):
        return [conds]
    return [[c] for c in conds]


def rules_from_spec(seccomp: dict, default: int, resolve) -> list[tuple[int, int, list]]:
    rules = []
    for i, entry in enumerate(seccomp.get("syscalls") or []):
        field = f"linux.seccomp.syscalls[{i}]"
        if not isinstance(entry, dict):
            raise _invalid(field, "must be an object")
        action = action_from_name(entry.get("action"), entry.get("errnoRet"), f"{field}.action")
        conds = _conditions(entry.get("args") or [], f"{field}.args")
        names = entry.get("names") or []
        if not isinstance(names, list) or not names:
            raise _invalid(f"{field}.names", "must be a non-empty array")
        if action == default:
            continue
        for name in names:
            if action == ACT_NOTIFY and name in NOTIFY_REFUSED:
                raise _invalid(f"{field}.action", f"SCMP_ACT_NOTIFY cannot be used for the "
                               f"{name} syscall: the runtime makes it under the new filter "
                               "(to hand the notify fd over and report the process ready)")
            nr = resolve(name)
            if nr is None:
                log.debug("seccomp: syscall %s unknown on this architecture, skipped", name)
                continue
            rules += [(nr, action, group) for group in _split_conditions(conds)]
    return rules


# Compiling the default profile costs several milliseconds, and every
# container of a node (and every exec into one) usually carries the same few
# profiles: compiled filters are kept by the profile's canonical JSON.
_CACHE_SIZE = 64
_cache: "OrderedDict[str, Filter]" = OrderedDict()
_cache_lock = threading.Lock()


def compile_filter(seccomp: dict) -> Filter:
    """Compile an OCI seccomp section (or take it from the cache); errors
    name the field."""
    # the agent's socket is per container (the notifier, the audit stream)
    # and is not in the program: the cache is keyed without it
    listener_path, metadata = listener_from_spec(seccomp)
    body = {k: v for k, v in seccomp.items() if k not in ("listenerPath", "listenerMetadata")}
    key = json.dumps([body, listener_path is not None], sort_keys=True, separators=(",", ":"))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is None:
        cached = _compile_filter(seccomp)
        with _cache_lock:
            _cache[key] = cached
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    if (cached.listener_path, cached.listener_metadata) == (listener_path, metadata):
        return cached
    return dataclasses.replace(cached, listener_path=listener_path, listener_metadata=metadata)


def _compile_filter(seccomp: dict) -> Filter:
    from crio_native._native import seccomp as native

    default = action_from_name(seccomp.get("defaultAction"), seccomp.get("defaultErrnoRet"),
                               "linux.seccomp.defaultAction")
    if default == ACT_NOTIFY:
        # every call of the runtime's own after the load would wait for an
        # agent that has no fd yet (runc refuses it too)
        raise _invalid("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default "
                       "action")
    arches = []
    for i, name in enumerate(seccomp.get("architectures") or []):
        token = native.arch_token(name.removeprefix("SCMP_ARCH_").lower()) \
            if isinstance(name, str) else 0
        if not token:
            raise _invalid(f"linux.seccomp.architectures[{i}]", f"unknown architecture {name!r}")
        arches.append(token)
    flags = flags_from_spec(seccomp)
    rules = rules_from_spec(seccomp, default, native.syscall_number)
    listener_path, metadata = listener_from_spec(seccomp)
    flags = listener_flags(flags, listener_path is not None, seccomp)
    try:
        bpf = native.compile_bpf(default, arches, rules)
    except OSError as e:
        raise _invalid("linux.seccomp", f"libseccomp refused the filter: {e}") from e
    return Filter(bpf, flags, listener_path, metadata)


def flags_from_spec(seccomp: dict) -> int:
    flags = 0
    for i, name in enumerate(seccomp.get("flags") or []):
        if not isinstance(name, str) or name not in FLAGS:
            raise _invalid(f"linux.seccomp.flags[{i}]", f"unknown flag {name!r}")
        flags |= FLAGS[name]
    return flags


def listener_flags(flags: int, listener: bool, seccomp: dict) -> int:
    """The flags as the kernel takes them for a filter with or without a
    listener."""
    if not listener:
        if flags & FLAG_WAIT_KILLABLE_RECV:
            # there is never a notification to wait for (and the kernel
            # refuses the flag alone); runc and crun load the filter anyway
            log.debug("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: "
                      "no rule uses SCMP_ACT_NOTIFY")
        return flags & ~FLAG_WAIT_KILLABLE_RECV
    # TSYNC and NEW_LISTENER are exclusive (EINVAL); the child is a single
    # thread, so there is nothing to synchronise anyway
    flags = (flags & ~FLAG_TSYNC) | FLAG_NEW_LISTENER
    if flags & FLAG_WAIT_KILLABLE_RECV \
            and not kernel_supports_flags(FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV):
        i = (seccomp.get("flags") or []).index("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
        raise FailedPrecondition(f"config.json: linux.seccomp.flags[{i}]: "
                                 "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs Linux 5.19 or "
                                 "later; this kernel refuses it")
    return flags


@functools.cache
def kernel_supports_flags(flags: int) -> bool:
    """Whether seccomp(SECCOMP_SET_MODE_FILTER) takes these flags, asked as
    libseccomp asks: with no program, the kernel checks the flags first
    (EINVAL for one it lacks or a combination it refuses) and only then
    reads the program (EFAULT).  Nothing is loaded either way."""
    from crio_native._native import seccomp as native

    nr = native.syscall_number("seccomp")
    if nr is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), ctypes.c_uint(_SET_MODE_FILTER), ctypes.c_uint(flags),
                      ctypes.c_void_p(None))
    return rc < 0 and ctypes.get_errno() == errno_mod.EFAULT


def supported_flags() -> list[str]:
    """The flag names this kernel takes (WAIT_KILLABLE_RECV with
    NEW_LISTENER, the only way it is ever used), for `features`."""
    out = []
    for name, bit in FLAGS.items():
        if bit == FLAG_WAIT_KILLABLE_RECV:
            bit |= FLAG_NEW_LISTENER
        if kernel_supports_flags(bit):
            out.append(name)
    return sorted(out)


def notify_field(seccomp: dict) -> str | None:
    """The first `linux.seccomp.syscalls[i].action` that is SCMP_ACT_NOTIFY."""
    for i, entry in enumerate(seccomp.get("syscalls") or []):
        if isinstance(entry, dict) and entry.get("action") == "SCMP_ACT_NOTIFY":
            return f"linux.seccomp.syscalls[{i}].action"
    return None


def listener_from_spec(seccomp: dict) -> tuple[str | None, str]:
    """(listenerPath, listenerMetadata) when a rule notifies, else (None, "").
    Without SCMP_ACT_NOTIFY both are ignored, as the runtime spec says (and
    runc does)."""
    field = notify_field(seccomp)
    if field is None:
        if seccomp.get("listenerPath") or seccomp.get("listenerMetadata"):
            log.debug("linux.seccomp.listenerPath/listenerMetadata ignored: no rule uses "
                      "SCMP_ACT_NOTIFY")
        return None, ""
    path = seccomp.get("listenerPath")
    if not path:
        raise _invalid("linux.seccomp.listenerPath", f"not set, but {field} is SCMP_ACT_NOTIFY: "
                       "the notify fd needs an agent's socket to go to")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _invalid("linux.seccomp.listenerPath", f"must be an absolute path, got {path!r}")
    if "\0" in path or len(path.encode()) > LISTENER_PATH_MAX:
        raise _invalid("linux.seccomp.listenerPath",
                       f"{path!r} does not fit a unix socket address ({LISTENER_PATH_MAX} bytes)")
    metadata = seccomp.get("listenerMetadata") or ""
    if not isinstance(metadata, str):
        raise _invalid("linux.seccomp.listenerMetadata", f"must be a string, got {metadata!r}")
    return path, metadata
