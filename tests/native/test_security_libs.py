"""The compiled core links libseccomp and libselinux directly."""
from __future__ import annotations

import subprocess
from pathlib import Path

from crio_native._native import seccomp, selinux


def test_libseccomp_version_matches_the_installed_library():
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libseccomp2"],
                         capture_output=True, text=True, check=True).stdout
    major, minor, micro = seccomp.library_version()
    assert out.startswith(f"{major}.{minor}.{micro}")


def test_selinux_enabled_follows_selinuxfs():
    mounts = Path("/proc/self/mounts").read_text().split()
    assert selinux.enabled() == ("selinuxfs" in mounts)
