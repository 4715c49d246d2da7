"""linux.resources as cgroup control files: for each limit set, the file
in v1 and in v2 and the value (converted where v2 counts differently)."""
from __future__ import annotations

from typing import AbstractSet, Any

from crio_native.errors import Unimplemented
from crio_native.linux import cgroup_io, cgroup_net
from crio_native.linux.cgroups.device import device_rule_line, device_rules


def cpu_weight_from_shares(shares: int) -> int:
    """v1 cpu.shares (2..262144) onto v2 cpu.weight (1..10000), runc's mapping."""
    return 1 + ((shares - 2) * 9999) // 262142 if shares >= 2 else 1


def resource_files(resources: dict[str, Any], pure_v2_host: bool = False,
                   hugepage_sizes: AbstractSet[str] | None = None
                   ) -> list[tuple[str, str, str, str, str]]:
    """(field, controller, v1 file, v2 file, value) for each limit set.
    Device rules have no v2 file: v2 enforces them with an eBPF program
    (see plan_cgroups and devfilter).  With `hugepage_sizes` (the sizes the
    groups can limit), a 0 hugepage limit for any other size is left out
    (see hugetlb.py)."""
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
            # unlimited: v1 takes only -1, v2 only "max"
            value = "-1|max" if mem[key] == -1 else str(int(mem[key]))
            if key == "swap" and mem[key] != -1 and mem.get("limit"):
                # OCI's swap is memory+swap (v1's memsw); v2 limits swap alone
                value = f"{value}|{max(int(mem['swap']) - int(mem['limit']), 0)}"
            out.append((f"memory.{key}", "memory", v1, v2, value))
    if mem.get("kernelTCP") is not None:
        # v1 only (v2 accounts socket memory in memory.max and has no file
        # of its own: left out there, as runc's v2 driver leaves it)
        tcp = int(mem["kernelTCP"])
        out.append(("memory.kernelTCP", "memory", "memory.kmem.tcp.limit_in_bytes", "",
                    "-1" if tcp == -1 else str(tcp)))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        shares = int(cpu["shares"])
        out.append(("cpu.shares", "cpu", "cpu.shares", "cpu.weight",
                    f"{shares}|{cpu_weight_from_shares(shares)}"))
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
        size, limit = h.get("pageSize"), int(h.get("limit", 0))
        if limit == 0 and hugepage_sizes is not None and size not in hugepage_sizes:
            continue
        out.append((f"hugepageLimits[{i}]", "hugetlb", f"hugetlb.{size}.limit_in_bytes",
                    f"hugetlb.{size}.max", str(limit)))
    out += cgroup_io.blockio_files(resources.get("blockIO") or {})
    out += cgroup_io.rdma_files(resources.get("rdma") or {})
    out += cgroup_net.network_files(resources.get("network"))
    out += cgroup_io.unified_files(resources.get("unified") or {}, pure_v2_host)
    return out
