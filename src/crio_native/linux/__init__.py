"""Linux policy in Python: capabilities, mounts, seccomp, cgroups."""
