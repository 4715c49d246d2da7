"""What the plan depends on about the host, as one value, so that the
builders stay pure and tests can state the host they mean."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from crio_native.linux import apparmor as apparmor_mod
from crio_native.linux import capabilities as caps_mod
from crio_native.linux import landlock as landlock_mod
from crio_native.linux import selinux as selinux_mod


@dataclass(frozen=True)
class HostFacts:
    last_cap: int
    oom_score_adj: int          # the caller's own, what children inherit
    can_lower_oom: bool         # CAP_SYS_RESOURCE in the caller's CapEff
    selinux_enabled: bool = False   # SELinux labels are applied only then
    # Does the loaded policy know this context?  None: not asked.
    selinux_context_known: Callable[[str], bool] | None = None
    apparmor_enabled: bool = False  # process.apparmorProfile is applied only then
    landlock_abi: int = 0           # the kernel's best Landlock ABI (0: none)

    @classmethod
    def current(cls) -> "HostFacts":
        selinux = selinux_mod.enabled()
        return cls(
            last_cap=caps_mod.last_cap(),
            oom_score_adj=int(Path("/proc/self/oom_score_adj").read_text()),
            can_lower_oom=bool(caps_mod.effective_caps() & (1 << caps_mod.CAP_SYS_RESOURCE)),
            selinux_enabled=selinux,
            selinux_context_known=selinux_mod.context_known if selinux else None,
            apparmor_enabled=apparmor_mod.enabled(),
            landlock_abi=landlock_mod.abi_version(),
        )
