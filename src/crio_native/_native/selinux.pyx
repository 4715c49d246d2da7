# cython: language_level=3
"""libselinux, linked directly.  Labelling lands with the built-in runtime."""
from crio_native._native.includes cimport libselinux


def enabled():
    """True when the host runs with SELinux enabled (permissive or enforcing)."""
    return libselinux.is_selinux_enabled() == 1
