"""The process records: what the container runs (args, env, cwd, user and
groups), its limits (rlimits, oom score), its personality, and the
startContainer hooks it runs after `start`, before execve.  The capability
sets among them come from plan_security."""
from __future__ import annotations

import logging
import resource

from crio_native.runtime.builtin.hooks import Hook
from crio_native.runtime.builtin.plan_fields import abs_path, array_at, invalid, object_at, u32
from crio_native.runtime.builtin.plan_host import HostFacts
from crio_native.runtime.builtin.plan_security import caps_records
from crio_native.runtime.builtin.records import HOOK_MAX_STRS, Rec, Record, rec

# The plan's one logger, whichever of its modules writes: log settings and
# the JSON log's "logger" field name it.
log = logging.getLogger("crio_native.runtime.builtin.plan")


def rlimit_records(process: dict) -> list[Record]:
    out = []
    for i, r in enumerate(array_at(process, "rlimits", "process.rlimits")):
        field = f"process.rlimits[{i}]"
        name = r.get("type") if isinstance(r, dict) else None
        resource_id = getattr(resource, name, None) if isinstance(name, str) \
            and name.startswith("RLIMIT_") else None
        if resource_id is None:
            raise invalid(f"{field}.type", f"unknown rlimit {name!r}")
        soft, hard = r.get("soft"), r.get("hard")
        for key, v in (("soft", soft), ("hard", hard)):
            if not isinstance(v, int) or not 0 <= v < 2**64:
                raise invalid(f"{field}.{key}", f"must be an unsigned 64-bit integer, got {v!r}")
        if soft > hard:
            raise invalid(field, f"soft limit {soft} is above the hard limit {hard}")
        out.append(rec(Rec.RLIMIT, resource_id, soft, hard))
    return out


def oom_records(process: dict, host: HostFacts) -> list[Record]:
    value = process.get("oomScoreAdj")
    if value is None:
        return []
    if not isinstance(value, int) or not -1000 <= value <= 1000:
        raise invalid("process.oomScoreAdj", f"must be an integer in [-1000, 1000], got {value!r}")
    if value < host.oom_score_adj and not host.can_lower_oom:
        # Like containerd's restrict_oom_score_adj: without CAP_SYS_RESOURCE a
        # lower score would fail with EACCES; run the container with ours.
        log.warning("process.oomScoreAdj %d is below this runtime's %d and "
                    "CAP_SYS_RESOURCE is missing: using %d", value, host.oom_score_adj,
                    host.oom_score_adj)
        value = host.oom_score_adj
    return [rec(Rec.OOM_SCORE_ADJ, value)]


def user_records(process: dict) -> list[Record]:
    user = object_at(process, "user", "process.user")
    additional = array_at(user, "additionalGids", "process.user.additionalGids")
    gids = tuple(u32(g, f"process.user.additionalGids[{i}]") for i, g in enumerate(additional))
    if len(gids) > 256:
        raise invalid("process.user.additionalGids", "more than 256 groups")
    out = [rec(Rec.USER, u32(user.get("uid", 0), "process.user.uid"),
               u32(user.get("gid", 0), "process.user.gid"), gids)]
    if "umask" in user:
        out.append(rec(Rec.UMASK, u32(user["umask"], "process.user.umask") & 0o777))
    return out


def process_records(spec: dict, host: HostFacts) -> list[Record]:
    process = object_at(spec, "process", "process")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise invalid("process.args", "must be a non-empty array of strings")
    if not args[0]:
        raise invalid("process.args[0]", "must not be empty")
    env = array_at(process, "env", "process.env")
    for i, e in enumerate(env):
        if not isinstance(e, str) or "=" not in e:
            raise invalid(f"process.env[{i}]", f"must be KEY=value, got {e!r}")
    cwd = abs_path(process.get("cwd", "/"), "process.cwd")
    out = oom_records(process, host) + rlimit_records(process) + caps_records(process, host)
    out += user_records(process)
    out.append(rec(Rec.CWD, cwd))
    if process.get("noNewPrivileges"):
        out.append(rec(Rec.NO_NEW_PRIVS))
    out += [rec(Rec.ARG, a) for a in args] + [rec(Rec.ENV, e) for e in env]
    return out


# ---- personality --------------------------------------------------------------

# <sys/personality.h>
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
PERSONALITY_FLAGS = {
    "UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000, "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000, "ADDR_LIMIT_32BIT": 0x0800000, "SHORT_INODE": 0x1000000,
    "WHOLE_SECONDS": 0x2000000, "STICKY_TIMEOUTS": 0x4000000, "ADDR_LIMIT_3GB": 0x8000000,
}


def personality_records(linux: dict) -> list[Record]:
    """linux.personality: domain LINUX or LINUX32 (uname -m says i686 on
    x86_64), plus flags by their <sys/personality.h> names."""
    if "personality" not in linux:
        return []
    p = object_at(linux, "personality", "linux.personality")
    domain = p.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise invalid("linux.personality.domain", f"must be LINUX or LINUX32, got {domain!r}")
    persona = PERSONALITY_DOMAINS[domain]
    for i, flag in enumerate(array_at(p, "flags", "linux.personality.flags")):
        if flag not in PERSONALITY_FLAGS:
            raise invalid(f"linux.personality.flags[{i}]", f"unknown personality flag {flag!r}")
        persona |= PERSONALITY_FLAGS[flag]
    return [rec(Rec.PERSONALITY, persona)]


# ---- startContainer hooks ------------------------------------------------------

def start_hook_records(hooks: list[Hook], result_fifo: str | None) -> list[Record]:
    """The startContainer hooks, run by the container process after `start`
    (see hooks.c): each with its timeout, args and env; a failure is
    reported on `result_fifo` (if any), which `start` reads, and on the
    container's stderr."""
    if not hooks:
        return []
    out = [rec(Rec.START_RESULT, result_fifo)] if result_fifo else []
    for i, h in enumerate(hooks):
        if len(h.args) + len(h.env) > HOOK_MAX_STRS:
            raise invalid(f"hooks.startContainer[{i}]",
                          f"more than {HOOK_MAX_STRS} args and env entries")
        strings = b"".join(_cstr(v, f"hooks.startContainer[{i}]") for v in h.args + h.env)
        out.append(rec(Rec.START_HOOK, h.timeout or 0, len(h.args), h.path, strings))
    return out


def _cstr(value: str, field: str) -> bytes:
    data = value.encode()
    if b"\0" in data:
        raise invalid(field, f"{value!r} contains a NUL byte")
    return data + b"\0"
