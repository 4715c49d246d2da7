"""Capability names (as the OCI spec spells them) and bit masks."""
from __future__ import annotations

import functools
from pathlib import Path

CAPABILITIES: dict[str, int] = {
    name: bit for bit, name in enumerate([
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
        "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
        "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
        "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ])
}
CAP_SYS_RESOURCE = CAPABILITIES["CAP_SYS_RESOURCE"]


@functools.cache
def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        return max(CAPABILITIES.values())


def effective_caps(pid: str = "self") -> int:
    """CapEff of a process as a bit mask."""
    return _status_mask(pid, "CapEff:")


def bounding_caps(pid: str = "self") -> int:
    """CapBnd of a process as a bit mask."""
    return _status_mask(pid, "CapBnd:")


def _status_mask(pid: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1], 16)
    return 0


def names_in_mask(mask: int) -> list[str]:
    """The capability names whose bits are set in `mask`, in number order."""
    return [name for name, bit in sorted(CAPABILITIES.items(), key=lambda kv: kv[1])
            if mask >> bit & 1]
