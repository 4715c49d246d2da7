"""What the built-in runtime supports, as runtime-spec features.md's JSON
(the answer of `crio-native-runtime features`)."""
from __future__ import annotations

from typing import Any

from crio_native.linux import apparmor, capabilities, cgroups, landlock, seccomp
from pathlib import Path

from crio_native.linux.mounts import (FLAG_OPTIONS, PROPAGATION, kernel_at_least,
                                      kernel_has_mount_setattr)
from crio_native.runtime.builtin.plan import NAMESPACES


def user_namespaces_supported() -> bool:
    """KEP-127 pods on this kernel: user namespaces enabled, and idmapped
    mounts where the rootfs needs them (overlayfs takes idmapped layers
    since Linux 5.19; mount_setattr itself came with 5.12)."""
    try:
        enabled = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except (OSError, ValueError):
        enabled = False
    return enabled and kernel_at_least(5, 19)


def features() -> dict[str, Any]:
    from crio_native._native import seccomp as native_seccomp

    hierarchies = cgroups.host_hierarchies()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": sorted(set(FLAG_OPTIONS) | set(PROPAGATION)
                               | ({"rro"} if kernel_has_mount_setattr() else set())),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            # idmapped bind mounts, through a joined user namespace (plan_rootfs)
            "mountExtensions": {"idmap": {"enabled": user_namespaces_supported()}},
            "capabilities": sorted(capabilities.CAPABILITIES,
                                   key=capabilities.CAPABILITIES.__getitem__),
            "cgroup": {"v1": any(h.version == 1 for h, _ in hierarchies),
                       "v2": any(h.version == 2 for h, _ in hierarchies),
                       "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": sorted([*seccomp.FIXED_ACTIONS, "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"]),
                "operators": sorted(seccomp.OPS),
                "archs": [a for a in ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
                                      "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
                          if native_seccomp.arch_token(a.removeprefix("SCMP_ARCH_").lower())],
                "knownFlags": sorted(seccomp.FLAGS),
                # what this kernel takes (WAIT_KILLABLE_RECV: Linux 5.19)
                "supportedFlags": seccomp.supported_flags(),
            },
            # process.apparmorProfile is applied whenever the host runs AppArmor
            "apparmor": {"enabled": apparmor.enabled()},
            # labels are applied whenever the host runs SELinux
            "selinux": {"enabled": True},
        },
        # org.crio-native.landlock (a policy, spec/landlock.py) is enforced
        # with this Landlock ABI; "0": the kernel has none
        "annotations": {"org.crio-native.runtime": "builtin",
                        "org.crio-native.landlock.abi": str(landlock.abi_version())},
    }
