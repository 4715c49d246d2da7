"""What the built-in runtime supports, as runtime-spec features.md's JSON
(the answer of `crio-native-runtime features`)."""
from __future__ import annotations

from typing import Any

from crio_native.linux import capabilities, cgroups, seccomp
from crio_native.linux.mounts import FLAG_OPTIONS, PROPAGATION, kernel_has_mount_setattr
from crio_native.runtime.builtin.plan import NAMESPACES


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
            "apparmor": {"enabled": False},
            # labels are applied whenever the host runs SELinux
            "selinux": {"enabled": True},
        },
        "annotations": {"org.crio-native.runtime": "builtin"},
    }
