"""OCI linux.resources as the properties of a systemd unit, so systemd
itself holds the limits it would otherwise put back on the next
daemon-reload (the runtime writes the same values into the group too).
Conversions follow the cgroup v2 ones runc and crun use."""
from __future__ import annotations

from typing import Any

from crio_native.linux.cgroups.resources import cpu_weight_from_shares

# a D-Bus property: (name, (signature, value)), as jeepney encodes a variant
Property = tuple[str, tuple[str, Any]]

INFINITY = 2**64 - 1          # systemd's "infinity" for a uint64 limit
CPU_PERIOD_DEFAULT = 100_000  # µs, the kernel's default cfs period


def cpus_mask(cpus: str) -> bytes:
    """A cpuset list ("0-3,6") as systemd's AllowedCPUs byte array: bit n of
    byte n//8 for CPU n."""
    bits: set[int] = set()
    for item in filter(None, (p.strip() for p in cpus.split(","))):
        lo, _, hi = item.partition("-")
        bits.update(range(int(lo), int(hi or lo) + 1))
    out = bytearray((max(bits) // 8 + 1) if bits else 0)
    for b in bits:
        out[b // 8] |= 1 << (b % 8)
    return bytes(out)


def _memory(mem: dict[str, Any]) -> list[Property]:
    out: list[Property] = []
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    if limit > 0:
        out.append(("MemoryMax", ("t", limit)))
    if (mem.get("reservation") or 0) > 0:
        out.append(("MemoryLow", ("t", mem["reservation"])))
    if swap == -1:
        out.append(("MemorySwapMax", ("t", INFINITY)))
    elif swap > 0 and limit > 0 and swap >= limit:
        # OCI's swap is memory+swap; v2's swap.max is the swap alone
        out.append(("MemorySwapMax", ("t", swap - limit)))
    return out


def _cpu(cpu: dict[str, Any]) -> list[Property]:
    out: list[Property] = []
    if (cpu.get("shares") or 0) > 0:
        out.append(("CPUWeight", ("t", cpu_weight_from_shares(cpu["shares"]))))
    period = cpu.get("period") or CPU_PERIOD_DEFAULT
    if cpu.get("period"):
        out.append(("CPUQuotaPeriodUSec", ("t", period)))
    quota = cpu.get("quota") or 0
    if quota > 0:
        per_sec = quota * 1_000_000 // period
        # systemd keeps the quota in 10 ms steps of CPU time per second:
        # round up, as runc does, so the limit is never below the request
        per_sec = -(-per_sec // 10_000) * 10_000
        out.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    elif quota == -1:
        out.append(("CPUQuotaPerSecUSec", ("t", INFINITY)))
    if cpu.get("cpus"):
        out.append(("AllowedCPUs", ("ay", cpus_mask(cpu["cpus"]))))
    if cpu.get("mems"):
        out.append(("AllowedMemoryNodes", ("ay", cpus_mask(cpu["mems"]))))
    return out


def _pids(pids: dict[str, Any]) -> list[Property]:
    limit = pids.get("limit") or 0
    if limit > 0:
        return [("TasksMax", ("t", limit))]
    return [("TasksMax", ("t", INFINITY))] if limit < 0 else []


def resource_properties(resources: dict[str, Any]) -> list[Property]:
    """The unit properties for OCI `resources` (memory, cpu, pids); what
    has no property (hugetlb, unified, devices) is written into the group
    directly."""
    return [*_memory(resources.get("memory") or {}), *_cpu(resources.get("cpu") or {}),
            *_pids(resources.get("pids") or {})]


def scope_properties(slice_: str, pids: list[int], description: str, *,
                     delegate: bool) -> list[Property]:
    """A transient scope in `slice_` holding `pids` from the start: no
    default dependencies (it must not wait for, or be stopped with, the
    daemon's own unit) and collected even when it failed, so nothing of it
    stays behind once its processes are gone."""
    props: list[Property] = [
        ("Description", ("s", description)),
        ("Slice", ("s", slice_)),
        ("PIDs", ("au", pids)),
        ("DefaultDependencies", ("b", False)),
        ("CollectMode", ("s", "inactive-or-failed")),
    ]
    if delegate:
        props += [("Delegate", ("b", True)), ("MemoryAccounting", ("b", True)),
                  ("CPUAccounting", ("b", True)), ("TasksAccounting", ("b", True))]
    return props
