"""The OCI resources beyond memory/cpu/pids: blockIO, rdma and unified, as
cgroup file writes in the shape cgroups.resource_files uses:

    (field, controller, v1 file, v2 file, value)

`controller` may be "V1NAME|V2NAME" where the two versions name it apart
(blkio / io); a value "V1|V2" differs per version; an empty file name means
the version has no such knob and the field is skipped there.

Weights: v1 had blkio.weight (CFQ, gone since Linux 5.0) and has
blkio.bfq.weight with BFQ; v2 has io.bfq.weight (10-1000, the OCI range)
with BFQ, else io.weight (1-10000, iocost).  Which exists is only known
when writing, so the plan names the first and write_limits falls back to
the second (FALLBACKS), converting the value the way runc and crun do."""
from __future__ import annotations

from typing import Any, Callable

from crio_native.errors import FailedPrecondition, InvalidArgument

Entry = tuple[str, str, str, str, str]
IO = "blkio|io"

THROTTLES = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
             ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
             ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
             ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"))


def io_weight_from_bfq(weight: int) -> int:
    """blkio weight (10-1000) to io.weight (1-10000), linearly, as runc does."""
    return 1 + (weight - 10) * 9999 // 990


def _convert_weight_line(line: str) -> str:
    """"N" or "MAJ:MIN N" with N rescaled for io.weight."""
    head, _, number = line.rpartition(" ")
    value = str(io_weight_from_bfq(int(number)))
    return f"{head} {value}" if head else value


# file the plan names -> (file to try when it is missing, value conversion)
FALLBACKS: dict[str, tuple[str, Callable[[str], str]]] = {
    "blkio.weight": ("blkio.bfq.weight", str),
    "blkio.weight_device": ("blkio.bfq.weight_device", str),
    "io.bfq.weight": ("io.weight", _convert_weight_line),
}


def _int(value: Any, field: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise InvalidArgument(f"config.json: linux.resources.{field}: must be an integer "
                              f"{bound}, not {value!r}")
    return value


def _device(entry: Any, field: str) -> str:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"config.json: linux.resources.{field}: must be an object")
    return f"{_int(entry.get('major'), field + '.major')}:" \
           f"{_int(entry.get('minor'), field + '.minor')}"


def blockio_files(blockio: dict[str, Any]) -> list[Entry]:
    out: list[Entry] = []
    if blockio.get("weight") is not None:
        w = _int(blockio["weight"], "blockIO.weight", 10, 1000)
        out.append(("blockIO.weight", IO, "blkio.weight", "io.bfq.weight", str(w)))
    if blockio.get("leafWeight") is not None:
        w = _int(blockio["leafWeight"], "blockIO.leafWeight", 10, 1000)
        # CFQ's knob; v2 has none (runc ignores it there too)
        out.append(("blockIO.leafWeight", IO, "blkio.leaf_weight", "", str(w)))
    for i, dev in enumerate(blockio.get("weightDevice") or []):
        field = f"blockIO.weightDevice[{i}]"
        where = _device(dev, field)
        if dev.get("weight") is not None:
            w = _int(dev["weight"], field + ".weight", 10, 1000)
            out.append((field, IO, "blkio.weight_device", "io.bfq.weight", f"{where} {w}"))
        if dev.get("leafWeight") is not None:
            w = _int(dev["leafWeight"], field + ".leafWeight", 10, 1000)
            out.append((field, IO, "blkio.leaf_weight_device", "", f"{where} {w}"))
    for key, v1_file, v2_key in THROTTLES:
        for i, dev in enumerate(blockio.get(key) or []):
            field = f"blockIO.{key}[{i}]"
            where = _device(dev, field)
            rate = _int(dev.get("rate"), field + ".rate")
            v2_rate = rate if rate else "max"     # 0 lifts the limit, as v1's 0 does
            out.append((field, IO, v1_file, "io.max",
                        f"{where} {rate}|{where} {v2_key}={v2_rate}"))
    return out


def rdma_files(rdma: dict[str, Any]) -> list[Entry]:
    """rdma.max, the same line in both versions: "DEVICE hca_handle=N hca_object=M"."""
    out: list[Entry] = []
    for device, limits in rdma.items():
        field = f"rdma[{device!r}]"
        if not device or any(c.isspace() for c in device) or not isinstance(limits, dict):
            raise InvalidArgument(f"config.json: linux.resources.{field}: a device name "
                                  "without spaces mapping to hcaHandles/hcaObjects")
        parts = [device]
        for key, knob in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            if limits.get(key) is not None:
                parts.append(f"{knob}={_int(limits[key], f'{field}.{key}')}")
        if len(parts) > 1:
            out.append((field, "rdma", "rdma.max", "rdma.max", " ".join(parts)))
    return out


def unified_files(unified: dict[str, Any], pure_v2: bool) -> list[Entry]:
    """linux.resources.unified: cgroup v2 files written as given.  Only on a
    pure v2 host (as runc: v1 has no such files), and only plain file names
    of a controller (or cgroup.*), never paths."""
    if not unified:
        return []
    if not pure_v2:
        raise FailedPrecondition("config.json: linux.resources.unified: needs a pure "
                                 "cgroup v2 host; this one is not")
    out: list[Entry] = []
    for name, value in unified.items():
        field = f"unified[{name!r}]"
        ctrl, dot, knob = name.partition(".")
        if not dot or not ctrl or not knob or "/" in name or name.startswith(".") \
                or not isinstance(value, str):
            raise InvalidArgument(f"config.json: linux.resources.{field}: must map a cgroup "
                                  "file name like memory.high to a string")
        if name in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
            raise InvalidArgument(f"config.json: linux.resources.{field}: the runtime "
                                  "manages this file itself")
        out.append((field, "" if ctrl == "cgroup" else ctrl, "", name, value))
    return out
