"""OCI bundle (config.json + rootfs) -> flat launch plan.

Pure apart from reading the bundle (the rootfs is inspected so a mount
destination cannot escape it and a bind source's kind is known); host facts
the plan depends on come in as a HostFacts value.  Every invalid field raises
InvalidArgument naming it, e.g. `config.json: linux.namespaces[2].type: ...`.
The records are those of src/_native/plan.h, emitted in the child's order."""
from __future__ import annotations

import json
import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from crio_native.errors import InvalidArgument, Unimplemented
from crio_native.linux import capabilities as caps_mod
from crio_native.linux import seccomp as seccomp_mod
from crio_native.linux import selinux as selinux_mod
from crio_native.linux.cgroups import CgroupPlan
from crio_native.runtime.builtin.hooks import CREATE_KINDS, Hook, parse_hooks
from crio_native.linux.mounts import (DEFAULT_DEVICES, DEVICE_TYPES, MS_BIND, MS_RDONLY, MS_REC,
                                      PROPAGATION, Device, MountOptions, default_symlinks,
                                      parse_mount_options)
from crio_native.runtime.builtin.records import (HOOK_MAX_STRS, LABEL_MAX, MOUNT_BIND,
                                                 MOUNT_DEST_FILE, MOUNT_FS, MOUNT_LABEL_XATTR,
                                                 MOUNT_RRO, Rec, Record, encode, rec)
from crio_native.runtime.builtin.seccomp_listener import ListenerState, listener_record

log = logging.getLogger(__name__)

NAMESPACES = {
    "mount": 0x00020000, "cgroup": 0x02000000, "uts": 0x04000000, "ipc": 0x08000000,
    "user": 0x10000000, "pid": 0x20000000, "network": 0x40000000, "time": 0x00000080,
}
FS_TYPES = {"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup2", "bind", "none"}
# Labelled by setxattr on their root rather than a context= option (runc's
# label.SetFileLabel): a pod's containers sharing an IPC namespace mount one
# mqueue superblock again, and a second context= on it would fail.
XATTR_LABEL_TYPES = {"mqueue"}


def has_cgroup_mount(spec: dict) -> bool:
    return any(isinstance(m, dict) and m.get("type") == "cgroup" for m in spec.get("mounts") or [])


@dataclass(frozen=True)
class HostFacts:
    last_cap: int
    oom_score_adj: int          # the caller's own, what children inherit
    can_lower_oom: bool         # CAP_SYS_RESOURCE in the caller's CapEff
    selinux_enabled: bool = False   # SELinux labels are applied only then
    # Does the loaded policy know this context?  None: not asked.
    selinux_context_known: Callable[[str], bool] | None = None

    @classmethod
    def current(cls) -> "HostFacts":
        selinux = selinux_mod.enabled()
        return cls(
            last_cap=caps_mod.last_cap(),
            oom_score_adj=int(Path("/proc/self/oom_score_adj").read_text()),
            can_lower_oom=bool(caps_mod.effective_caps() & (1 << caps_mod.CAP_SYS_RESOURCE)),
            selinux_enabled=selinux,
            selinux_context_known=selinux_mod.context_known if selinux else None,
        )


def invalid(field: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field}: {reason}")


def load_spec(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / "config.json"
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"bundle {bundle}: no config.json") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise invalid("(document)", "must be a JSON object")
    return spec


def _obj(spec: dict, key: str, field: str) -> dict:
    v = spec.get(key) or {}
    if not isinstance(v, dict):
        raise invalid(field, "must be an object")
    return v


def _list(obj: dict, key: str, field: str) -> list:
    v = obj.get(key) or []
    if not isinstance(v, list):
        raise invalid(field, "must be an array")
    return v


def _abs_path(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise invalid(field, f"must be an absolute path, got {value!r}")
    if ".." in value.split("/"):
        raise invalid(field, f"{value!r} must not contain '..'")
    return value


def _u32(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise invalid(field, f"must be an unsigned 32-bit integer, got {value!r}")
    return value


# ---- namespaces -------------------------------------------------------------

def namespace_records(linux: dict) -> tuple[list[Record], set[str]]:
    flags, joins, seen = 0, [], set()
    for i, ns in enumerate(_list(linux, "namespaces", "linux.namespaces")):
        field = f"linux.namespaces[{i}]"
        kind = ns.get("type") if isinstance(ns, dict) else None
        if kind not in NAMESPACES:
            raise invalid(f"{field}.type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise invalid(f"{field}.type", f"namespace {kind!r} listed twice")
        seen.add(kind)
        if ns.get("path"):
            joins.append((kind, _abs_path(ns["path"], f"{field}.path")))
        else:
            flags |= NAMESPACES[kind]
    if not flags & NAMESPACES["mount"]:
        raise invalid("linux.namespaces", "the built-in runtime needs a new mount namespace")
    # A joined user namespace first: it grants the rights to join the rest.
    joins.sort(key=lambda j: j[0] != "user")
    records = [rec(Rec.NS_NEW, flags)]
    records += [rec(Rec.NS_JOIN, NAMESPACES[k], p) for k, p in joins]
    new = {k for k, bit in NAMESPACES.items() if flags & bit}
    return records, new


def id_map_records(linux: dict, new_ns: set[str]) -> list[Record]:
    out = []
    for which, key in ((0, "uidMappings"), (1, "gidMappings")):
        for i, m in enumerate(_list(linux, key, f"linux.{key}")):
            field = f"linux.{key}[{i}]"
            if "user" not in new_ns:
                raise invalid(field, "id mappings need a new user namespace")
            if not isinstance(m, dict):
                raise invalid(field, "must be an object")
            out.append(rec(Rec.ID_MAP, which, _u32(m.get("containerID"), f"{field}.containerID"),
                           _u32(m.get("hostID"), f"{field}.hostID"),
                           _u32(m.get("size"), f"{field}.size")))
    return out


# ---- root and mounts ----------------------------------------------------------

def root_path(spec: dict, bundle: Path) -> Path:
    root = _obj(spec, "root", "root")
    path = root.get("path")
    if not isinstance(path, str) or not path:
        raise invalid("root.path", "missing")
    full = (Path(bundle) / path).resolve()
    if not full.is_dir():
        raise invalid("root.path", f"{full} is not a directory")
    return full


def check_inside(rootfs: Path, dest: str, field: str) -> None:
    """Walk `dest` inside `rootfs` the way the container will see it and
    refuse one whose symlinks climb above the root.  (The C side resolves with
    RESOLVE_IN_ROOT anyway; this turns an escape attempt into a clear error.)"""
    todo, depth, hops = [p for p in dest.split("/") if p], [], 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not depth:
                raise invalid(field, f"{dest!r} resolves outside the container root")
            depth.pop()
            continue
        here = rootfs.joinpath(*depth, part)
        if not here.is_symlink():
            depth.append(part)
            continue
        hops += 1
        if hops > 40:
            raise invalid(field, f"{dest!r}: too many levels of symbolic links")
        target = os.readlink(here)
        if target.startswith("/"):
            depth = []
        todo[:0] = [p for p in target.split("/") if p]


def cgroup_mount_records(dest: str, opts: MountOptions, cgroups: CgroupPlan,
                         new_ns: set[str], mount_label: str | None = None
                         ) -> tuple[list[Record], list[Record]]:
    """A `cgroup` mount, as runc makes it: on a pure v2 host cgroup2 itself
    (rooted at the container's group with a cgroup namespace, at the host's
    root without one), or a bind of the container's group in a user namespace
    without a cgroup namespace (cgroup2 cannot be mounted there); elsewhere a
    tmpfs holding a bind of the container's group in each v1 hierarchy, plus
    symlinks for co-mounted controllers (cpu -> cpu,cpuacct); that tmpfs
    gets the mount label, as runc's does.
    Returns (mount records, symlink records)."""
    flags = opts.flags & ~(MS_BIND | MS_REC)
    v2 = [d for _name, d, version in cgroups.views if version == 2]
    if len(cgroups.views) == 1 and v2:
        if "cgroup" in new_ns or "user" not in new_ns:
            return [rec(Rec.MOUNT, flags, opts.propagation, MOUNT_FS, "cgroup2", dest,
                        "cgroup2", "")], []
        return [rec(Rec.MOUNT, flags | MS_BIND | MS_REC, opts.propagation, MOUNT_BIND,
                    str(v2[0]), dest, "", "")], []
    mounts = [rec(Rec.MOUNT, flags & ~MS_RDONLY, 0, MOUNT_FS, "tmpfs", dest, "tmpfs",
                  selinux_mod.mount_data_with_label("tmpfs", "mode=755", mount_label))]
    links = []
    for name, d, version in cgroups.views:
        if version == 2:
            continue  # runc leaves a hybrid host's unified hierarchy out too
        mounts.append(rec(Rec.MOUNT, flags | MS_BIND | MS_REC, opts.propagation, MOUNT_BIND,
                          str(d), f"{dest}/{name}", "", ""))
        if "," in name:
            links += [rec(Rec.SYMLINK, name, f"{dest}/{part}") for part in name.split(",")]
    return mounts, links


def mount_record(m: Any, i: int, bundle: Path, rootfs: Path,
                 mount_label: str | None = None) -> Record:
    field = f"mounts[{i}]"
    if not isinstance(m, dict):
        raise invalid(field, "must be an object")
    dest = _abs_path(m.get("destination"), f"{field}.destination")
    check_inside(rootfs, dest, f"{field}.destination")
    fstype = m.get("type") or "none"
    if fstype not in FS_TYPES:
        raise invalid(f"{field}.type", f"unsupported filesystem type {fstype!r}")
    opts = parse_mount_options(_list(m, "options", f"{field}.options"))
    source = m.get("source") or fstype
    kind = MOUNT_FS
    if opts.is_bind or fstype == "bind":
        kind = MOUNT_BIND
        src = Path(bundle) / source
        if not src.exists():
            raise invalid(f"{field}.source", f"{src}: no such file or directory")
        source = str(src.resolve())
        if not src.is_dir():
            kind |= MOUNT_DEST_FILE
        fstype = ""
    if opts.recursive_ro:
        kind |= MOUNT_RRO
    data = opts.data
    if kind == MOUNT_FS:
        data = selinux_mod.mount_data_with_label(fstype, data, mount_label)
        if mount_label and fstype in XATTR_LABEL_TYPES and "context=" not in data:
            kind |= MOUNT_LABEL_XATTR
    return rec(Rec.MOUNT, opts.flags, opts.propagation, kind, source, dest, fstype, data)


def rootfs_records(spec: dict, bundle: Path, barrier: str | None, new_ns: set[str],
                   cgroups: CgroupPlan | None = None,
                   mount_label: str | None = None, no_pivot: bool = False) -> list[Record]:
    """The mount tree.  `no_pivot` (runc's --no-pivot): the rootfs is moved
    onto / and chrooted into instead of pivot_root; `mount_label` also goes
    to the tmpfs over masked directories and (by setxattr) to mqueue."""
    rootfs = root_path(spec, bundle)
    linux = _obj(spec, "linux", "linux")
    out = [rec(Rec.ROOTFS, str(rootfs))]
    if no_pivot:
        out.append(rec(Rec.NO_PIVOT))
    if mount_label:
        if len(mount_label.encode()) > LABEL_MAX:
            raise invalid("linux.mountLabel", f"longer than {LABEL_MAX} bytes")
        out.append(rec(Rec.MOUNT_LABEL, mount_label))
    prop = linux.get("rootfsPropagation")
    if prop:
        if prop not in PROPAGATION:
            raise invalid("linux.rootfsPropagation", f"unknown propagation {prop!r}")
        out.append(rec(Rec.ROOT_PROPAGATION, PROPAGATION[prop]))
    if barrier:
        out.append(rec(Rec.BARRIER, barrier))
    mounts = _list(spec, "mounts", "mounts")
    links: list[Record] = []
    for i, m in enumerate(mounts):
        if isinstance(m, dict) and m.get("type") == "cgroup":
            dest = _abs_path(m.get("destination"), f"mounts[{i}].destination")
            check_inside(rootfs, dest, f"mounts[{i}].destination")
            if cgroups is None:
                raise invalid(f"mounts[{i}]", "a cgroup mount needs the container's cgroups")
            opts = parse_mount_options(_list(m, "options", f"mounts[{i}].options"))
            more, more_links = cgroup_mount_records(dest, opts, cgroups, new_ns, mount_label)
            out += more
            links += more_links
        else:
            out.append(mount_record(m, i, bundle, rootfs, mount_label))
    out += device_records(linux, userns="user" in new_ns) + links
    has_devpts = any(isinstance(m, dict) and m.get("type") == "devpts"
                     and m.get("destination") == "/dev/pts" for m in mounts)
    out += [rec(Rec.SYMLINK, t, link) for t, link in default_symlinks(has_devpts)]
    for key, kind in (("readonlyPaths", Rec.READONLY_PATH), ("maskedPaths", Rec.MASK)):
        for i, p in enumerate(_list(linux, key, f"linux.{key}")):
            out.append(rec(kind, _abs_path(p, f"linux.{key}[{i}]")))
    if _obj(spec, "root", "root").get("readonly"):
        out.append(rec(Rec.ROOT_READONLY))
    return out


def device_records(linux: dict, userns: bool = False) -> list[Record]:
    devices = {d.path: d for d in DEFAULT_DEVICES}
    for i, d in enumerate(_list(linux, "devices", "linux.devices")):
        field = f"linux.devices[{i}]"
        if not isinstance(d, dict) or d.get("type") not in DEVICE_TYPES:
            raise invalid(f"{field}.type", f"must be one of c, u, b, p, got "
                          f"{d.get('type') if isinstance(d, dict) else d!r}")
        path = _abs_path(d.get("path"), f"{field}.path")
        mode = d.get("fileMode", 0o666)
        devices[path] = Device(path, DEVICE_TYPES[d["type"]] | (_u32(mode, f"{field}.fileMode") & 0o7777),
                               _u32(d.get("major", 0), f"{field}.major"),
                               _u32(d.get("minor", 0), f"{field}.minor"),
                               _u32(d.get("uid", 0), f"{field}.uid"),
                               _u32(d.get("gid", 0), f"{field}.gid"))
    if userns:
        # mknod is refused in a user namespace: bind the host's node instead.
        return [rec(Rec.MOUNT, MS_BIND, 0, MOUNT_BIND | MOUNT_DEST_FILE, d.path, d.path, "", "")
                for d in devices.values()]
    return [rec(Rec.DEVICE, d.mode, d.major, d.minor, d.uid, d.gid, d.path)
            for d in devices.values()]


# ---- process ----------------------------------------------------------------

def hostname_records(spec: dict, new_ns: set[str]) -> list[Record]:
    out = []
    for key, kind in (("hostname", Rec.HOSTNAME), ("domainname", Rec.DOMAINNAME)):
        value = spec.get(key)
        if not value:
            continue
        if not isinstance(value, str):
            raise invalid(key, "must be a string")
        if "uts" not in new_ns:
            raise invalid(key, f"cannot set the {key} without a new uts namespace")
        out.append(rec(kind, value))
    return out


def rlimit_records(process: dict) -> list[Record]:
    out = []
    for i, r in enumerate(_list(process, "rlimits", "process.rlimits")):
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
    user = _obj(process, "user", "process.user")
    gids = tuple(_u32(g, f"process.user.additionalGids[{i}]")
                 for i, g in enumerate(_list(user, "additionalGids", "process.user.additionalGids")))
    if len(gids) > 256:
        raise invalid("process.user.additionalGids", "more than 256 groups")
    out = [rec(Rec.USER, _u32(user.get("uid", 0), "process.user.uid"),
               _u32(user.get("gid", 0), "process.user.gid"), gids)]
    if "umask" in user:
        out.append(rec(Rec.UMASK, _u32(user["umask"], "process.user.umask") & 0o777))
    return out


def _cap_mask(names: Any, field: str, host: HostFacts) -> int:
    if not isinstance(names, list):
        raise invalid(field, "must be an array")
    mask = 0
    for i, name in enumerate(names):
        bit = caps_mod.CAPABILITIES.get(name)
        if bit is None:
            raise invalid(f"{field}[{i}]", f"unknown capability {name!r}")
        if bit > host.last_cap:
            log.warning("%s: %s is unknown to this kernel, skipped", field, name)
            continue
        mask |= 1 << bit
    return mask


def caps_records(process: dict, host: HostFacts) -> list[Record]:
    if "capabilities" not in process:
        return []
    c = _obj(process, "capabilities", "process.capabilities")
    sets = [_cap_mask(c.get(k, []), f"process.capabilities.{k}", host)
            for k in ("bounding", "effective", "permitted", "inheritable", "ambient")]
    return [rec(Rec.CAPS, *sets, host.last_cap)]


def process_records(spec: dict, host: HostFacts) -> list[Record]:
    process = _obj(spec, "process", "process")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise invalid("process.args", "must be a non-empty array of strings")
    if not args[0]:
        raise invalid("process.args[0]", "must not be empty")
    env = _list(process, "env", "process.env")
    for i, e in enumerate(env):
        if not isinstance(e, str) or "=" not in e:
            raise invalid(f"process.env[{i}]", f"must be KEY=value, got {e!r}")
    cwd = _abs_path(process.get("cwd", "/"), "process.cwd")
    out = oom_records(process, host) + rlimit_records(process) + caps_records(process, host)
    out += user_records(process)
    out.append(rec(Rec.CWD, cwd))
    if process.get("noNewPrivileges"):
        out.append(rec(Rec.NO_NEW_PRIVS))
    out += [rec(Rec.ARG, a) for a in args] + [rec(Rec.ENV, e) for e in env]
    return out


def unsupported(spec: dict, terminal: bool = False) -> None:
    """Fail loudly on what this slice of the runtime does not do yet, rather
    than run a container without it.  A terminal needs someone to hold the
    pty master (`terminal`): the monitor, or a console socket."""
    linux = _obj(spec, "linux", "linux")
    process = _obj(spec, "process", "process")
    if process.get("terminal") and not terminal:
        raise Unimplemented("config.json: process.terminal: a terminal needs a console socket "
                            "(--console-socket) or the monitor's --terminal")
    checks = [*((f"process.{k}", process.get(k)) for k in ("ioPriority", "scheduler")),
              *((f"linux.{k}", linux.get(k)) for k in ("intelRdt", "timeOffsets"))]
    for field, present in checks:
        if present:
            raise Unimplemented(f"config.json: {field}: not supported by the built-in runtime yet")
    profile = process.get("apparmorProfile")
    if profile:
        if _apparmor_enabled():
            raise Unimplemented("config.json: process.apparmorProfile: apparmor profiles are "
                                "not applied yet")
        log.debug("config.json: process.apparmorProfile %r ignored: apparmor is disabled on "
                  "this host", profile)


def _apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


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
    p = _obj(linux, "personality", "linux.personality")
    domain = p.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise invalid("linux.personality.domain", f"must be LINUX or LINUX32, got {domain!r}")
    persona = PERSONALITY_DOMAINS[domain]
    for i, flag in enumerate(_list(p, "flags", "linux.personality.flags")):
        if flag not in PERSONALITY_FLAGS:
            raise invalid(f"linux.personality.flags[{i}]", f"unknown personality flag {flag!r}")
        persona |= PERSONALITY_FLAGS[flag]
    return [rec(Rec.PERSONALITY, persona)]


# ---- startContainer hooks ------------------------------------------------------

def start_hook_records(hooks: list[Hook], result_fifo: str | None) -> list[Record]:
    """The startContainer hooks, run by the container process after `start`
    (see process.c): each with its timeout, args and env; a failure is
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


# ---- SELinux ----------------------------------------------------------------

def selinux_label(value: Any, field: str, host: HostFacts) -> str | None:
    """The label to apply from `field`, or None: none given, or SELinux is
    off on this host (then the label is ignored, as runc does)."""
    if not value:
        return None
    if not host.selinux_enabled:
        log.debug("config.json: %s %r ignored: SELinux is disabled on this host", field, value)
        return None
    problem = selinux_mod.label_problem(value)
    if problem:
        raise invalid(field, problem)
    if host.selinux_context_known is not None and not host.selinux_context_known(value):
        raise invalid(field, f"{value!r} is not a valid context in the loaded SELinux policy")
    return value


def selinux_records(label: str | None) -> list[Record]:
    """The exec label, set by the child's last step before execve."""
    return [rec(Rec.SELINUX_LABEL, label)] if label else []


IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def _sysctl_namespace(key: str) -> str | None:
    """The namespace that makes `key` the container's own, as runc decides."""
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def sysctl_records(linux: dict, new_ns: set[str]) -> list[Record]:
    sysctls = linux.get("sysctl") or {}
    if not isinstance(sysctls, dict):
        raise invalid("linux.sysctl", "must be an object")
    out = []
    for key, value in sysctls.items():
        field = f"linux.sysctl.{key}"
        if not isinstance(value, str):
            raise invalid(field, "value must be a string")
        parts = key.split(".")
        if not all(parts) or any(p in ("..", ".") or "/" in p for p in parts):
            raise invalid(field, "not a sysctl name")
        ns = _sysctl_namespace(key)
        if ns is None or ns not in new_ns:
            raise invalid(field, f"sysctl {key!r} is not in a separate kernel namespace of "
                                 "the container")
        out.append(rec(Rec.SYSCTL, "/".join(parts), value))
    return out


def seccomp_records(linux: dict, listener: ListenerState | None = None) -> list[Record]:
    """The filter, plus (SCMP_ACT_NOTIFY) where its notify fd goes and what
    the agent is told about the container: `listener`."""
    section = linux.get("seccomp")
    if not section:
        return []
    if not isinstance(section, dict):
        raise invalid("linux.seccomp", "must be an object")
    filt = seccomp_mod.compile_filter(section)
    out = [rec(Rec.SECCOMP, filt.flags, filt.bpf)]
    if filt.listener_path is not None:
        out.append(listener_record(filt.listener_path, filt.listener_metadata,
                                   listener or ListenerState("", "")))
    return out


# ---- the plan ---------------------------------------------------------------

def plan_records(spec: dict, bundle: Path, *, host: HostFacts, barrier: str | None = None,
                 cgroups: CgroupPlan | None = None, console: bool = False,
                 start_result: str | None = None,
                 container_id: str = "", no_pivot: bool = False) -> list[Record]:
    """The launch plan for `spec`, as records in the order the child walks them.
    `console`: the child makes the pty itself from the container's
    /dev/ptmx, takes its slave as stdio and controlling tty, and sends the
    master back (to a --console-socket, or to the monitor's --terminal).  `start_result`: the fifo startContainer
    hook failures are reported on.  `container_id`: what a seccomp agent
    (linux.seccomp.listenerPath) is told the container is.  `no_pivot`:
    MS_MOVE and chroot instead of pivot_root (runc's --no-pivot)."""
    unsupported(spec, console)
    hooks = parse_hooks(spec)
    create_hooks = any(hooks.get(k) for k in CREATE_KINDS)
    linux = _obj(spec, "linux", "linux")
    process = _obj(spec, "process", "process")
    label = selinux_label(process.get("selinuxLabel"), "process.selinuxLabel", host)
    mount_label = selinux_label(linux.get("mountLabel"), "linux.mountLabel", host)
    ns, new_ns = namespace_records(linux)
    return (([rec(Rec.CONSOLE)] if console else [])
            + ns + id_map_records(linux, new_ns) + hostname_records(spec, new_ns)
            + rootfs_records(spec, bundle, barrier, new_ns, cgroups, mount_label, no_pivot)
            + ([rec(Rec.HOOK_PAUSE)] if create_hooks else [])
            + sysctl_records(linux, new_ns)
            + personality_records(linux)
            + process_records(spec, host)
            + selinux_records(label)
            + start_hook_records(hooks.get("startContainer", []), start_result)
            + seccomp_records(linux, ListenerState(container_id, str(bundle),
                                                   spec.get("annotations") or {})))


NS_PROC_FILES = {"mount": "mnt", "network": "net", "pid": "pid", "ipc": "ipc", "uts": "uts",
                 "user": "user", "cgroup": "cgroup", "time": "time"}


def exec_records(spec: dict, process: dict, *, pid: int, host: HostFacts,
                 container: dict | None = None) -> list[Record]:
    """Plan for an extra process in the running container whose init is
    `pid`: join each of its namespaces (user first), no mount tree of its
    own, the given process settings and the container's seccomp filter.
    Its SELinux label is its own `selinuxLabel`, else the container's (as
    runc exec does).  `container`: its OCI state (id, status, bundle), what
    a seccomp agent is told along with the exec'd process's notify fd."""
    linux = _obj(spec, "linux", "linux")
    _ns, _new = namespace_records(linux)
    types = sorted((ns["type"] for ns in linux.get("namespaces") or []),
                   key=lambda t: t != "user")
    joins = [rec(Rec.NS_JOIN, NAMESPACES[t], f"/proc/{pid}/ns/{NS_PROC_FILES[t]}")
             for t in types]
    # process.terminal: the caller passes a pty slave as stdin (the streaming
    # server holds the master); the child makes it its controlling tty
    tty = [rec(Rec.CONTROLLING_TTY)] if process.get("terminal") else []
    own = _obj(spec, "process", "process").get("selinuxLabel")
    label = selinux_label(process.get("selinuxLabel") or own, "process.selinuxLabel", host)
    return (tty + [rec(Rec.NS_NEW, 0)] + joins + personality_records(linux)
            + process_records({"process": process}, host)
            + selinux_records(label) + seccomp_records(linux, _exec_listener_state(
                spec, container or {}, pid)))


def _exec_listener_state(spec: dict, container: dict, pid: int) -> ListenerState:
    return ListenerState(str(container.get("id", "")), str(container.get("bundle", "")),
                         spec.get("annotations") or {},
                         str(container.get("status") or "running"), pid)


def build_plan(spec: dict, bundle: Path, *, host: HostFacts | None = None,
               barrier: str | None = None) -> bytes:
    return encode(plan_records(spec, bundle, host=host or HostFacts.current(), barrier=barrier))

