"""Container cgroups: where `linux.cgroupsPath` goes on this host, which of
`linux.resources` the host can enforce, creating and removing the groups.

Hosts are either pure cgroup v2 (the child is cloned straight into its group
with CLONE_INTO_CGROUP) or hybrid/v1 (the parent writes the child's pid to
each hierarchy's cgroup.procs while the child waits).  A v2 host may also
have v1 hierarchies mounted for what v2 lacks (net_cls/net_prio, or a named
one): it stays a v2 host, and a container joins such a hierarchy only for a
limit set there (then by cgroup.procs, in all its groups).

Every group lives at or below the *cgroup root*: a configured path inside
the hierarchy, or by default this process's own cgroup in each hierarchy.
A relative cgroupsPath goes below the root; an absolute one must already lie
at or below it.  Nothing is ever created outside the root, and existing
groups are only touched to enable controllers in cgroup.subtree_control
(v2), from the root down to the container group's parent.

A limit the host has no controller for is an error naming the field; a
hierarchy the spec sets nothing in only gets the process placed in it.
Device rules go to the v1 devices controller where the host has one, and on
pure v2 become an eBPF device filter attached to the group (devfilter)."""
from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import select
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crio_native.errors import FailedPrecondition, InvalidArgument, Unimplemented
from crio_native.linux import cgroup_io, cgroup_net, devfilter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: Path
    version: int                    # 1 or 2
    controllers: frozenset[str]     # v1: from the mount options; v2: cgroup.controllers

    @property
    def name(self) -> str:
        return "cgroup2" if self.version == 2 else ",".join(sorted(self.controllers))

    def own_path(self, own: dict[str, str]) -> str:
        """This process's cgroup in this hierarchy, as /proc/self/cgroup names it."""
        key = "" if self.version == 2 else next(iter(sorted(self.controllers)))
        return own.get(key, "/")

    def dir_of(self, path: str, mount_root: str) -> Path | None:
        """The directory of hierarchy path `path` under this mount, or None
        when the mount (rooted at `mount_root`) does not show it."""
        top = mount_root.rstrip("/")
        if path != top and not path.startswith(top + "/"):
            return None
        rel = path[len(top):].strip("/")
        return self.mountpoint / rel if rel else self.mountpoint


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """controller (or "" for the v2 hierarchy) -> this process's cgroup path."""
    text = text if text is not None else Path("/proc/self/cgroup").read_text()
    out: dict[str, str] = {}
    for line in text.splitlines():
        _hid, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            out[c] = path
    return out


class _MountTable:
    """/proc/self/mountinfo, read again only after the mount table changed:
    the kernel flags an open mountinfo fd with an exceptional condition
    (select's third set) on every mount or unmount in our namespace."""

    def __init__(self) -> None:
        self._fd = -1
        self._text = ""

    def text(self) -> str:
        if self._fd < 0:
            self._fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        elif not select.select([], [], [self._fd], 0)[2]:
            return self._text
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 65536):
            chunks.append(chunk)
        self._text = b"".join(chunks).decode()
        return self._text


_mount_table = _MountTable()
_hierarchies_cache: tuple[str, list[tuple["Hierarchy", str]]] | None = None


def host_hierarchies(mountinfo: str | None = None) -> list[tuple[Hierarchy, str]]:
    """Each cgroup hierarchy once, with the root of its first mount; parsed
    again only when the mount table changed."""
    global _hierarchies_cache
    if mountinfo is not None:
        return _parse_hierarchies(mountinfo)
    text = _mount_table.text()
    if _hierarchies_cache is None or _hierarchies_cache[0] is not text:
        _hierarchies_cache = (text, _parse_hierarchies(text))
    return list(_hierarchies_cache[1])


def _parse_hierarchies(text: str) -> list[tuple[Hierarchy, str]]:
    seen, out = set(), []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, opts = (right.split() + ["", ""])[:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        fields = left.split()
        mount_root, mountpoint = fields[3], Path(fields[4])
        if fstype == "cgroup2":
            try:
                ctrls = frozenset((mountpoint / "cgroup.controllers").read_text().split())
            except OSError:
                ctrls = frozenset()
            version = 2
        else:
            known = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                     "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"}
            ctrls = frozenset(o for o in opts.split(",") if o in known or o.startswith("name="))
            version = 1
        key = (version, ctrls)
        if key in seen:
            continue
        seen.add(key)
        out.append((Hierarchy(mountpoint, version, ctrls), mount_root))
    return out


@functools.cache
def _warn_device_rules_once() -> None:
    # a hybrid host without the v1 devices controller (rare): like runc's v1
    # driver, nothing enforces the rules there
    log.warning("linux.resources.devices: this host has neither a v1 devices controller nor "
                "pure cgroup v2; device cgroup rules are not enforced, containers get only "
                "the device nodes their spec lists")


def pure_v2(hierarchies: list[tuple[Hierarchy, str]]) -> bool:
    """A cgroup v2 host: one v2 hierarchy, and v1 ones (if any) only with
    controllers v2 does not have (net_cls, net_prio) or none at all (a
    named hierarchy).  A v1 controller that v2 also has makes it hybrid."""
    if sum(h.version == 2 for h, _ in hierarchies) != 1:
        return False
    return all(c in cgroup_net.V1_ONLY or c.startswith("name=")
               for h, _ in hierarchies if h.version == 1 for c in h.controllers)


# ---- resources -> files -------------------------------------------------------

def _cpu_weight_from_shares(shares: int) -> int:
    return 1 + ((shares - 2) * 9999) // 262142 if shares >= 2 else 1


# What every container may use whatever its spec says (runc appends the same
# list after the spec's rules): mknod of any node, and the standard devices.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2),
                           (136, None), (10, 200))),
]


def device_rule_line(rule: Any, field: str) -> tuple[str, str]:
    """("allow" | "deny", the v1 devices.allow/deny line) for an OCI device
    rule: `a` for every device, else `TYPE MAJOR:MINOR ACCESS` with `*`
    for an absent number."""
    if not isinstance(rule, dict):
        raise InvalidArgument(f"config.json: linux.resources.{field}: must be an object")
    kind = "allow" if rule.get("allow") else "deny"
    access = rule.get("access") or "rwm"
    dtype = rule.get("type") or "a"
    if dtype not in ("a", "c", "b") or not set(access) <= set("rwm"):
        raise InvalidArgument(f"config.json: linux.resources.{field}: bad type {dtype!r} or "
                              f"access {access!r}")
    major, minor = rule.get("major"), rule.get("minor")
    if dtype == "a" and major is None and minor is None:
        return kind, "a"
    num = lambda n: "*" if n is None or n == -1 else str(int(n))  # noqa: E731
    return kind, f"{dtype} {num(major)}:{num(minor)} {access}"


def device_rules(resources: dict[str, Any]) -> list[Any]:
    """The device rules to enforce, in order: the spec's, then the standard
    ones (none at all when the spec has none, as before)."""
    rules = resources.get("devices") or []
    return list(rules) + DEFAULT_DEVICE_RULES if rules else []


def resource_files(resources: dict[str, Any],
                   pure_v2_host: bool = False) -> list[tuple[str, str, str, str, str]]:
    """(field, controller, v1 file, v2 file, value) for each limit set.
    Device rules have no v2 file: v2 enforces them with an eBPF program
    (see plan_cgroups and devfilter)."""
    out = []
    unsupported = set(resources) - {"memory", "cpu", "pids", "hugepageLimits", "devices",
                                    "blockIO", "rdma", "network", "unified"}
    if unsupported:
        name = sorted(unsupported)[0]
        raise Unimplemented(f"config.json: linux.resources.{name}: not supported yet")
    for i, rule in enumerate(device_rules(resources)):
        kind, value = device_rule_line(rule, f"devices[{i}]")
        out.append((f"devices[{i}]", "devices", f"devices.{kind}", "", value))
    mem = resources.get("memory") or {}
    for key, v1, v2 in (("limit", "memory.limit_in_bytes", "memory.max"),
                        ("reservation", "memory.soft_limit_in_bytes", "memory.low"),
                        ("swap", "memory.memsw.limit_in_bytes", "memory.swap.max")):
        if mem.get(key) is not None:
            value = "max" if mem[key] == -1 else str(int(mem[key]))
            if key == "swap" and value != "max" and mem.get("limit"):
                # OCI's swap is memory+swap (v1's memsw); v2 limits swap alone
                value = f"{value}|{max(int(mem['swap']) - int(mem['limit']), 0)}"
            out.append((f"memory.{key}", "memory", v1, v2, value))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        shares = int(cpu["shares"])
        out.append(("cpu.shares", "cpu", "cpu.shares", "cpu.weight",
                    f"{shares}|{_cpu_weight_from_shares(shares)}"))
    if cpu.get("quota") is not None or cpu.get("period") is not None:
        quota, period = cpu.get("quota"), cpu.get("period") or 100000
        out.append(("cpu.quota", "cpu", "cpu.cfs_quota_us", "cpu.max",
                    f"{quota if quota is not None else -1}|"
                    f"{'max' if quota in (None, -1) else quota} {period}"))
        if cpu.get("period"):
            out.append(("cpu.period", "cpu", "cpu.cfs_period_us", "", str(period)))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            out.append((f"cpu.{key}", "cpuset", f"cpuset.{key}", f"cpuset.{key}", cpu[key]))
    pids = resources.get("pids") or {}
    if "limit" in pids:
        limit = int(pids["limit"])
        out.append(("pids.limit", "pids", "pids.max", "pids.max",
                    str(limit) if limit > 0 else "max"))
    for i, h in enumerate(resources.get("hugepageLimits") or []):
        size = h.get("pageSize")
        out.append((f"hugepageLimits[{i}]", "hugetlb", f"hugetlb.{size}.limit_in_bytes",
                    f"hugetlb.{size}.max", str(int(h.get("limit", 0)))))
    out += cgroup_io.blockio_files(resources.get("blockIO") or {})
    out += cgroup_io.rdma_files(resources.get("rdma") or {})
    out += cgroup_net.network_files(resources.get("network"))
    out += cgroup_io.unified_files(resources.get("unified") or {}, pure_v2_host)
    return out


@dataclass
class CgroupPlan:
    """The directories to make, the files to write in each, and how the
    child gets in: cgroup.procs files (hybrid/v1) or one v2 dir (clone3)."""
    dirs: list[Path] = field(default_factory=list)
    writes: list[tuple[Path, str]] = field(default_factory=list)
    procs: list[Path] = field(default_factory=list)
    into: Path | None = None
    # on a v2 host: (the cgroup root's dir, the container's dir) in the v2
    # hierarchy, where controllers are delegated and the device filter goes
    v2: tuple[Path, Path] | None = None
    # (name of the hierarchy's mountpoint, the container's dir in it, version)
    # for a `cgroup` mount inside the container
    views: list[tuple[str, Path, int]] = field(default_factory=list)
    # the cgroup root's dir in each hierarchy, in the order of `dirs`
    bases: list[Path] = field(default_factory=list)
    # v2 controllers the writes need enabled from the root down (pure v2 only)
    controllers: frozenset[str] = frozenset()
    # pure v2: the device filter (struct bpf_insn[] from devfilter) to attach
    # to `into`, or None when the spec has no device rules
    device_program: bytes | None = None


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def check_root(value: str, what: str = "runtime.cgroup_root") -> str:
    """A cgroup root setting, normalised: "" (this process's own cgroup) or
    an absolute path inside the hierarchy without '..'."""
    if value == "":
        return ""
    parts = _components(value) if isinstance(value, str) else [".."]
    if not isinstance(value, str) or not value.startswith("/") or ".." in parts:
        raise InvalidArgument(f"{what}: {value!r}: must be empty (this process's own cgroup) "
                              "or an absolute cgroup path without '..'")
    return "/" + "/".join(parts)


def _check_cgroups_path(cgroups_path: str) -> list[str]:
    """The path's components; InvalidArgument for '..' or a path naming nothing."""
    parts = _components(cgroups_path) if isinstance(cgroups_path, str) else []
    bad = not isinstance(cgroups_path, str) or ".." in cgroups_path.split("/") \
        or (not parts and not cgroups_path.startswith("/"))
    if bad:
        raise InvalidArgument(f"config.json: linux.cgroupsPath: {cgroups_path!r}: want a path "
                              "without '..': relative (placed below the cgroup root) or "
                              "absolute at or below the cgroup root")
    return parts


def _below(path: str, root: str) -> str | None:
    """`path` relative to `root` ("" for root itself), or None when outside."""
    if root == "/":
        return path.lstrip("/")
    if path == root:
        return ""
    return path[len(root) + 1:] if path.startswith(root + "/") else None


def _group_dir(h: Hierarchy, mount_root: str, cgroups_path: str, parts: list[str],
               own: dict[str, str], root: str) -> tuple[Path, Path]:
    """(the cgroup root's dir, the container's dir) in one hierarchy."""
    root_path = root or h.own_path(own)
    base = h.dir_of(root_path, mount_root)
    if base is None:
        if root:
            raise FailedPrecondition(f"cgroup root {root!r} is not visible in the {h.name} "
                                     f"hierarchy mounted at {h.mountpoint}")
        base = h.mountpoint  # our own cgroup lies outside this mount's view
    if not cgroups_path.startswith("/"):
        return base, base.joinpath(*parts)
    rel = _below("/" + "/".join(parts), root_path)
    if rel is None:
        whose = "" if root else f" (the runtime's own cgroup in the {h.name} hierarchy)"
        raise InvalidArgument(f"config.json: linux.cgroupsPath: {cgroups_path!r} is outside "
                              f"the cgroup root {root_path!r}{whose}: an absolute path must lie "
                              "at or below it (see runtime.cgroup_root)")
    return base, base / rel if rel else base


def plan_cgroups(cgroups_path: str, resources: dict[str, Any],
                 hierarchies: list[tuple[Hierarchy, str]] | None = None,
                 own: dict[str, str] | None = None, root: str | None = None) -> CgroupPlan:
    """Where the container's groups go and what is written there (no I/O
    beyond reading the host's layout when not given, and on a v2 host
    whether the container's group exists in a v1 hierarchy beside it).
    `root` is the configured cgroup root; empty or None means this
    process's own cgroup."""
    parts = _check_cgroups_path(cgroups_path)
    root = check_root(root or "")
    hierarchies = host_hierarchies() if hierarchies is None else hierarchies
    own = own_cgroups() if own is None else own
    v2_only = pure_v2(hierarchies)
    by_ctrl: dict[str, Hierarchy] = {}
    for h, _mount_root in hierarchies:
        for c in h.controllers:
            by_ctrl.setdefault(c, h)
    files = _placed_files(resources, v2_only, by_ctrl)
    plan = CgroupPlan()
    dir_of: dict[Hierarchy, Path] = {}
    for h, mount_root in hierarchies:
        if v2_only and h.version == 1 and not any(fh == h for fh, *_rest in files):
            group = _beside_v2(h, mount_root, cgroups_path, parts, own, root)
            if group is None:
                continue
            base, d = group
        else:
            base, d = _group_dir(h, mount_root, cgroups_path, parts, own, root)
        dir_of[h] = d
        plan.bases.append(base)
        plan.dirs.append(d)
        # a v2 host's containers see cgroup2 alone (runc's too)
        if not v2_only or h.version == 2:
            plan.views.append((h.mountpoint.name, d, h.version))
        if v2_only and h.version == 2:
            plan.v2 = (base, d)
        plan.procs.append(d / "cgroup.procs")
    if v2_only and len(plan.dirs) == 1:
        # cloned straight into the one group.  With v1 groups beside it the
        # parent places the child in all of them, the v2 one included, by
        # cgroup.procs: a launch plan takes one or the other
        plan.into, plan.procs = plan.dirs[0], []
    for h, _ctrl, name, value in files:
        if h is None:           # unified's cgroup.* files (v2 hosts only)
            assert plan.v2 is not None
            plan.writes.append((plan.v2[1] / name, value))
        else:
            plan.writes.append((dir_of[h] / name, value))
    if v2_only:
        plan.controllers = frozenset(ctrl for h, ctrl, _name, _value in files
                                     if h is not None and h.version == 2)
    v1_devices = "devices" in by_ctrl and by_ctrl["devices"].version == 1
    rules = device_rules(resources)
    if rules and not v1_devices:
        if v2_only:
            plan.device_program = devfilter.program_from_rules(rules)
        else:
            _warn_device_rules_once()
    return plan


def _placed_files(resources: dict[str, Any], v2_only: bool, by_ctrl: dict[str, Hierarchy]
                  ) -> list[tuple[Hierarchy | None, str, str, str]]:
    """(hierarchy, controller, file name, value) for each limit of
    `resources` (no hierarchy for unified's cgroup.* files); a limit no
    hierarchy can take is an error."""
    out: list[tuple[Hierarchy | None, str, str, str]] = []
    v1_devices = "devices" in by_ctrl and by_ctrl["devices"].version == 1
    for fieldname, ctrl, v1, v2, value in resource_files(resources, v2_only):
        if ctrl == "devices" and not v1_devices:
            continue
        if not ctrl:
            out.append((None, "", v2, value))
            continue
        # the controller's name in each version ("blkio|io"), v1's first
        names = ctrl.split("|")
        ctrl = next((c for c in names if c in by_ctrl), names[-1])
        if ctrl not in by_ctrl:
            why = (f": it is a cgroup v1 controller (v2 has none) and no v1 hierarchy with {ctrl} "
                   "is mounted") if ctrl in cgroup_net.V1_ONLY else ""
            raise FailedPrecondition(f"config.json: linux.resources.{fieldname}: this host has "
                                     f"no {ctrl} cgroup controller to enforce it{why}")
        h = by_ctrl[ctrl]
        name = v1 if h.version == 1 else v2
        if not name:
            continue
        if "|" in value:
            value = value.split("|")[0 if h.version == 1 else 1]
        out.append((h, ctrl, name, value))
    return out


def _beside_v2(h: Hierarchy, mount_root: str, cgroups_path: str, parts: list[str],
               own: dict[str, str], root: str) -> tuple[Path, Path] | None:
    """A v1 hierarchy beside a v2 root that the spec sets nothing in: the
    container joins it only where its group is already there (made by the
    create that set a limit in it: `update` must find the same groups).
    Otherwise it stays out, as runc and crun leave such hierarchies alone."""
    try:
        base, d = _group_dir(h, mount_root, cgroups_path, parts, own, root)
    except (FailedPrecondition, InvalidArgument):
        return None
    return (base, d) if d != base and d.is_dir() else None


# ---- side effects -------------------------------------------------------------

def _inherit_cpuset(d: Path) -> None:
    """A new v1 cpuset group starts empty and refuses tasks: copy the parent's.
    (In v2 an empty cpuset means the parent's; nothing to do there.)"""
    if (d / "cgroup.controllers").exists():
        return
    for name in ("cpuset.cpus", "cpuset.mems"):
        f = d / name
        if f.exists() and not f.read_text().strip():
            f.write_text((d.parent / name).read_text())


def delegation_chain(base: Path, d: Path) -> list[Path]:
    """The groups whose subtree_control must offer controllers to `d`: the
    cgroup root first, then each group below it down to d's parent (none
    when `d` is the root itself)."""
    if d == base:
        return []
    rel = d.relative_to(base).parts
    return [base.joinpath(*rel[:i]) for i in range(len(rel))]


def _write_control(path: Path, text: str) -> None:
    path.write_text(text)


def _holds_processes(group: Path) -> bool:
    """A non-root group with processes in it.  (Only the hierarchy's root,
    the one group without a cgroup.type file, is exempt from v2's rule that
    a group holding processes cannot hand controllers to children.)"""
    if not (group / "cgroup.type").exists():
        return False
    return bool((group / "cgroup.procs").read_text().split())


def _refused(group: Path, ctrls: set[str], e: OSError) -> FailedPrecondition:
    what = f"cgroup {group}: cannot enable {' '.join(sorted(ctrls))} for its child groups"
    if e.errno == errno.EBUSY:
        return FailedPrecondition(
            f"{what}: cgroup v2 cannot delegate controllers below a cgroup that holds "
            "processes; set runtime.cgroup_root (or CRIO_NATIVE_CGROUP_ROOT) to an empty cgroup")
    return FailedPrecondition(f"{what}: {e.strerror or e}")


def _enable_in(group: Path, required: set[str], optional: set[str]) -> None:
    """Enable the controllers in one group's subtree_control: the required
    ones in one write (an error if refused), then the rest best-effort.
    Nothing is written in a group that holds processes: the kernel would
    refuse domain controllers there, but accept threaded ones (cpu, cpuset,
    pids) and so turn the group into a thread root whose new children can
    take no processes at all."""
    if not (required or optional):
        return
    if _holds_processes(group):
        if required:
            raise _refused(group, required, OSError(errno.EBUSY, os.strerror(errno.EBUSY)))
        log.debug("cgroup %s holds processes: no controllers enabled below it", group)
        return
    control = group / "cgroup.subtree_control"
    for ctrls, must in ((required, True), (optional, False)):
        if not ctrls:
            continue
        try:
            _write_control(control, " ".join(f"+{c}" for c in sorted(ctrls)))
        except OSError as e:
            if must:
                raise _refused(group, ctrls, e) from e
            log.debug("cgroup %s: %s not enabled for children: %s", group, sorted(ctrls), e)


def enable_controllers(chain: list[Path], required: frozenset[str]) -> None:
    """Top down, make each group offer its children every controller it has
    (as runc and crun do, so a container sees the same files under all
    three); only a `required` one that cannot be enabled is an error.
    Changes are never undone: other groups below may rely on them."""
    for group in chain:
        offered = set((group / "cgroup.controllers").read_text().split())
        missing = sorted(required - offered)
        if missing:
            raise FailedPrecondition(f"cgroup {group} does not offer the {missing[0]} "
                                     "controller (not in its cgroup.controllers): the limit "
                                     "cannot be enforced below it")
        enabled = set((group / "cgroup.subtree_control").read_text().split())
        _enable_in(group, set(required) - enabled, offered - enabled - required)


def _make_dirs(d: Path, made: list[Path]) -> None:
    """mkdir `d` and its missing parents, appending each one made."""
    missing = []
    p = d
    while not p.exists():
        missing.append(p)
        p = p.parent
    for m in reversed(missing):
        m.mkdir()
        made.append(m)
        if (m / "cpuset.cpus").exists():
            _inherit_cpuset(m)


def _write_existing(path: Path, value: str) -> None:
    """Write a control file that must exist (no O_CREAT: on cgroupfs that
    would turn a missing file into EACCES)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_limits(writes: list[tuple[Path, str]]) -> None:
    for path, value in writes:
        try:
            _write_existing(path, value)
        except FileNotFoundError:
            fallback = cgroup_io.FALLBACKS.get(path.name)
            try:
                if fallback is None:
                    raise
                _write_existing(path.parent / fallback[0], fallback[1](value))
            except FileNotFoundError:
                raise FailedPrecondition(f"cgroup file {path} is missing: the host cannot "
                                         "enforce this limit") from None
            except OSError as e:
                raise _refused_value(path.parent / fallback[0], value, e) from e
        except OSError as e:
            raise _refused_value(path, value, e) from e


def _refused_value(path: Path, value: str, e: OSError) -> FailedPrecondition:
    # e.g. a memory limit below what the group already uses (EBUSY), or a
    # net_prio.ifpriomap line for an interface the host lacks (ENODEV)
    return FailedPrecondition(f"cgroup file {path}: the kernel refused {value!r}: "
                              f"{e.strerror or e}")


# ---- the v2 device filter -----------------------------------------------------

DEVICE_PROGRAM_NAME = "crn_devices"


def _device_filter_error(group: Path, e: OSError) -> FailedPrecondition:
    return FailedPrecondition(
        f"config.json: linux.resources.devices: cannot enforce the device cgroup rules on "
        f"cgroup v2 (eBPF device filter for {group}): {e.strerror or e}")


def attach_device_filter(group: Path, program: bytes) -> list[int]:
    """Load the device filter and attach it to the v2 group (BPF_F_ALLOW_MULTI,
    as runc does, so filters of the groups above still apply too); returns
    the ids of the filters attached there before it.  Must happen before
    any process of the container is in the group."""
    from crio_native._native import bpf

    try:
        before = bpf.cgroup_query(group, bpf.CGROUP_DEVICE)
        fd = bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, program, "Apache", DEVICE_PROGRAM_NAME)
        try:
            bpf.cgroup_attach(fd, group, bpf.CGROUP_DEVICE, bpf.F_ALLOW_MULTI)
        finally:
            os.close(fd)  # the attachment holds the program
    except OSError as e:
        raise _device_filter_error(group, e) from e
    return before


def replace_device_filter(group: Path, program: bytes) -> None:
    """Attach the new filter first, then detach the ones attached before
    (`update`, or a group that already existed), so the group is never
    without one (for that moment both apply), as runc does."""
    from crio_native._native import bpf

    old = attach_device_filter(group, program)
    for prog_id in old:
        try:
            bpf.cgroup_detach(group, bpf.CGROUP_DEVICE, prog_id)
        except FileNotFoundError:
            continue  # detached meanwhile
        except OSError as e:
            raise _device_filter_error(group, e) from e


def apply_limits(plan: CgroupPlan) -> None:
    """Write the limits into groups that exist (`update`) and replace the
    device filter when the resources give device rules."""
    write_limits(plan.writes)
    if plan.device_program is not None and plan.v2 is not None:
        replace_device_filter(plan.v2[1], plan.device_program)


def create(plan: CgroupPlan) -> list[Path]:
    """Make the groups (each cgroup root must exist), enable controllers
    from the root down on pure v2, and write the limits.  Returns the dirs
    made, for remove(); on failure removes what it made and raises."""
    for base in plan.bases:
        if not base.is_dir():
            raise FailedPrecondition(f"cgroup root {base} does not exist: create it first "
                                     "(see runtime.cgroup_root)")
    made: list[Path] = []
    try:
        for d in plan.dirs:
            _make_dirs(d, made)
        if plan.v2 is not None:
            enable_controllers(delegation_chain(*plan.v2), plan.controllers)
        write_limits(plan.writes)
        if plan.device_program is not None and plan.v2 is not None:
            replace_device_filter(plan.v2[1], plan.device_program)
    except BaseException:
        remove(made)  # rmdir also detaches a filter attached to the group
        raise
    return made


def remove(dirs: list[Path], timeout: float = 2.0) -> None:
    """rmdir the groups, deepest first; an exiting process may keep one busy
    for a moment, so EBUSY is retried briefly."""
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        deadline = time.monotonic() + timeout
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    log.error("cannot remove cgroup %s: %s", d, e)
                    raise
                time.sleep(0.01)


def kill_all(dirs: list[Path], sig: int) -> None:
    """Signal every process left in the groups (pids from cgroup.procs)."""
    for d in dirs:
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), sig)


# ---- freezer ----------------------------------------------------------------

def _freezer_files(dirs: list[Path]) -> list[tuple[Path, str, str, str]]:
    """(file to write, frozen value, thawed value, file to watch) for the one
    freezer in charge: v1 freezer.state when the host has it (a hybrid host's
    v2 freezer never settles on tasks the v1 one holds), else v2 cgroup.freeze."""
    v1 = [(d / "freezer.state", "FROZEN", "THAWED", "freezer.state")
          for d in dirs if (d / "freezer.state").exists()]
    if v1:
        return v1
    return [(d / "cgroup.freeze", "1", "0", "cgroup.events")
            for d in dirs if (d / "cgroup.freeze").exists()]


def _settled(path: Path, watch: str, frozen: bool) -> bool:
    text = (path.parent / watch).read_text()
    if watch == "freezer.state":
        return text.strip() == ("FROZEN" if frozen else "THAWED")
    return f"frozen {int(frozen)}" in text.splitlines()


def freeze(dirs: list[Path], frozen: bool, timeout: float = 5.0) -> None:
    """Freeze or thaw every process in the groups and wait until the kernel
    says it is done (v1 passes through FREEZING)."""
    files = _freezer_files(dirs)
    if not files:
        raise FailedPrecondition("the container has no freezer cgroup (set linux.cgroupsPath)")
    for path, on, off, _watch in files:
        path.write_text(on if frozen else off)
    deadline = time.monotonic() + timeout
    for path, on, _off, watch in files:
        while not _settled(path, watch, frozen):
            if time.monotonic() > deadline:
                raise FailedPrecondition(f"{path}: still not {'frozen' if frozen else 'thawed'}")
            if frozen and watch == "freezer.state":
                path.write_text(on)  # v1 may need a nudge out of FREEZING
            time.sleep(0.005)


def is_frozen(dirs: list[Path]) -> bool:
    files = _freezer_files(dirs)
    return bool(files) and all(_settled(p, w, True) for p, _on, _off, w in files)
