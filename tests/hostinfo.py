"""What this host can and cannot do, for the markers in pyproject.toml."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from crio_native.linux import cgroups


@functools.cache
def pure_cgroup2() -> bool:
    """True when /sys/fs/cgroup is a cgroup2 mount with the main controllers."""
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    if not controllers.exists():
        return False
    have = set(controllers.read_text().split())
    return {"cpu", "memory", "pids"} <= have


@functools.cache
def selinux_enabled() -> bool:
    return Path("/sys/fs/selinux/enforce").exists()


@functools.cache
def has_gpu() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


@functools.cache
def systemd_is_init() -> bool:
    """True when systemd is PID 1 (sd_booted's test) and its bus socket is there."""
    return Path("/run/systemd/system").is_dir() and \
        Path("/run/dbus/system_bus_socket").exists()


@functools.cache
def apparmor_enabled() -> bool:
    """AppArmor on (as the runtime checks it) and its parser installed."""
    import shutil

    from crio_native.linux import apparmor

    return apparmor.enabled() and shutil.which("apparmor_parser") is not None


def host_lacks(marker: str) -> str | None:
    """The reason a test with `marker` cannot run here, or None if it can."""
    if marker == "root" and os.geteuid() != 0:
        return "needs root"
    if marker == "requires_cgroup2" and not pure_cgroup2():
        return "needs a pure cgroup v2 host with cpu, memory and pids controllers " \
               "(this host is hybrid); runs in the vmrun.sh VM and on the device"
    if marker == "requires_selinux" and not selinux_enabled():
        return "needs SELinux enabled on the host; runs in the vmrun.sh VM"
    if marker == "requires_systemd" and not systemd_is_init():
        return "needs systemd as PID 1 and its D-Bus system bus; runs in `vmrun.sh --init systemd`"
    if marker == "requires_apparmor" and not apparmor_enabled():
        return "needs AppArmor enabled on the host; runs in `vmrun.sh --apparmor`"
    if marker == "requires_grpcgo":
        from tests.e2e import grpcgo

        reason = grpcgo.missing()
        if reason:
            return reason + "; `make install-deps` installs it"
    if marker == "requires_gpu" and not has_gpu():
        return "needs an NVIDIA GPU; runs on the device machine"
    return None


def cgroup_controller_usable(ctrl: str) -> bool:
    """Whether groups made below the runtime's cgroup root can use `ctrl`: on
    v1 the hierarchy must exist; on v2 the root must offer the controller."""
    for h, _mount_root in cgroups.host_hierarchies():
        if h.version == 1:
            if ctrl in h.controllers:
                return True
            continue
        root = os.environ.get("CRIO_NATIVE_CGROUP_ROOT") or cgroups.own_cgroups().get("", "/")
        offered = h.mountpoint / root.lstrip("/") / "cgroup.controllers"
        if offered.exists() and ctrl in offered.read_text().split():
            return True
    return False
