"""AppArmor on the host: is it on, which profiles are loaded, and our
default profile `crio-native-default` (loaded on first use).

A profile is applied by the runtime: the built-in one writes
`exec <profile>` to /proc/self/attr/apparmor/exec right before execve
(src/_native/exec.c), runc and crun take process.apparmorProfile."""
from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "crio-native-default"
UNCONFINED = "unconfined"
SECURITYFS = Path("/sys/kernel/security/apparmor")
ENABLED_PARAM = Path("/sys/module/apparmor/parameters/enabled")
PARSER = "apparmor_parser"

# As strict as CRI-O's crio-default: everything a container normally does
# (files, network, capabilities it holds, umount), but no mount, no writes to
# the kernel's knobs in /proc and /sys (except the IPC shm limits a pod may
# set), nothing at all in /proc/kcore, /proc/mem, /proc/kmem,
# /proc/sysrq-trigger, /sys/firmware, /sys/kernel/security and the powercap
# energy counters; signals only from unconfined processes (the daemon, the
# monitor, runc, crun) and within the profile; ptrace only within it.
# Written for the AppArmor 3.0 ABI, so that `network,` keeps unix sockets.
DEFAULT_PROFILE_TEXT = """\
abi <abi/3.0>,

profile crio-native-default flags=(attach_disconnected,mediate_deleted) {
  file,
  network,
  capability,
  umount,

  signal (receive) peer=unconfined,
  signal (receive) peer={/usr/bin/,/usr/sbin/,}{runc,crun},
  signal (send,receive) peer=crio-native-default,
  ptrace (trace,read,tracedby,readby) peer=crio-native-default,

  deny mount,

  # /proc: no writes to its top-level files, nor below any directory but the
  # per-process ones and sys/kernel/shm*
  deny /proc/* w,
  deny /proc/[^0-9s]*/** w,
  deny /proc/s[^y]*/** w,
  deny /proc/sy[^s]*/** w,
  deny /proc/sys?*/** w,
  deny /proc/sys/[^k]** w,
  deny /proc/sys/k[^e]** w,
  deny /proc/sys/kernel/[^s]** w,
  deny /proc/sys/kernel/s[^h]** w,
  deny /proc/sys/kernel/sh[^m]** w,
  deny /proc/sysrq-trigger rwklx,
  deny /proc/kcore rwklx,
  deny /proc/kmem rwklx,
  deny /proc/mem rwklx,

  # /sys: read-only but for the cgroup tree; some of it not even readable
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
  deny /sys/kernel/security/** rwklx,
}
"""

_load_lock = threading.Lock()


def enabled() -> bool:
    """True when the kernel runs AppArmor, its securityfs is mounted (what
    runc and CRI-O check) and apparmor_parser is installed to load profiles
    with (what containerd checks too: a kernel with AppArmor on but no
    parser, as on a Debian node without the apparmor package, is a host
    without AppArmor)."""
    try:
        on = ENABLED_PARAM.read_text().strip() == "Y"
    except OSError:
        return False
    return on and SECURITYFS.is_dir() and shutil.which(PARSER) is not None


def loaded_profiles() -> dict[str, str]:
    """Loaded profile name -> its mode (enforce, complain, ...)."""
    out: dict[str, str] = {}
    try:
        text = (SECURITYFS / "profiles").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, sep, mode = line.rpartition(" (")
        if sep:
            out[name] = mode.rstrip(")")
    return out


def is_loaded(name: str) -> bool:
    return name in loaded_profiles()


def load(text: str, what: str) -> None:
    """Load (or replace) the profile(s) in `text`; RuntimeError naming
    `what` when apparmor_parser is missing or refuses it."""
    try:
        p = subprocess.run([PARSER, "-Kr"], input=text.encode(), capture_output=True,
                           timeout=60)
    except FileNotFoundError:
        raise RuntimeError(f"{what}: {PARSER} is not installed") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what}: {PARSER} timed out") from None
    if p.returncode != 0:
        raise RuntimeError(f"{what}: {PARSER} failed: "
                           f"{p.stderr.decode(errors='replace').strip()}")


def ensure_default_loaded() -> None:
    """Load crio-native-default unless the kernel has it (again, if someone
    removed it since)."""
    if is_loaded(DEFAULT_PROFILE):
        return
    with _load_lock:
        if is_loaded(DEFAULT_PROFILE):
            return
        load(DEFAULT_PROFILE_TEXT, f"AppArmor profile {DEFAULT_PROFILE}")
        log.info("loaded AppArmor profile %s", DEFAULT_PROFILE)
