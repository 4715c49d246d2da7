"""Container cgroups: where `linux.cgroupsPath` goes on this host, which of
`linux.resources` the host can enforce, creating and removing the groups.

Hosts are either pure cgroup v2 (the child is cloned straight into its group
with CLONE_INTO_CGROUP) or hybrid/v1 (the parent writes the child's pid to
each hierarchy's cgroup.procs while the child waits).  A v2 host may also
have v1 hierarchies mounted for what v2 lacks (net_cls/net_prio, or a named
one): it stays a v2 host, and a container joins such a hierarchy only for a
limit set there (then by cgroup.procs, in all its groups).

Every group lives at or below the *cgroup root*: a configured path inside
the hierarchy, or by default this process's own cgroup in each hierarchy.
A relative cgroupsPath goes below the root; an absolute one must already lie
at or below it.  Nothing is ever created outside the root, and existing
groups are only touched to enable controllers in cgroup.subtree_control
(v2), from the root down to the container group's parent.

A limit the host has no controller for is an error naming the field (but
for a 0 hugepage limit of a size the groups cannot limit, which is skipped:
the kubelet sends one for every size); a hierarchy the spec sets nothing in
only gets the process placed in it.
Device rules go to the v1 devices controller where the host has one, and on
pure v2 become an eBPF device filter attached to the group (devfilter).

The modules: hierarchy (what the host has mounted), path (the root and
linux.cgroupsPath), resources (limits as control files), device (device
rules: v1 lines, the v2 filter), hugetlb (the huge page sizes groups can
limit), plan (what goes where), delegation (v2
subtree_control), group (making and removing the groups), memsw (v1's
memory and memory+swap limits written in an order the kernel takes),
freezer."""
from __future__ import annotations

from crio_native.errors import FailedPrecondition, InvalidArgument, Unimplemented
from crio_native.linux.cgroups.delegation import delegation_chain, enable_controllers
from crio_native.linux.cgroups.device import (DEFAULT_DEVICE_RULES, DEVICE_PROGRAM_NAME,
                                              attach_device_filter, device_rule_line,
                                              device_rules, replace_device_filter)
from crio_native.linux.cgroups.freezer import freeze, is_frozen
from crio_native.linux.cgroups.group import (apply_limits, create, kill_all, missing_dirs,
                                             remove, write_limits)
from crio_native.linux.cgroups.hierarchy import Hierarchy, host_hierarchies, own_cgroups, pure_v2
# private, read (never patched) by the mount-table test
from crio_native.linux.cgroups.hierarchy import _MountTable as _MountTable
from crio_native.linux.cgroups.hierarchy import _parse_hierarchies as _parse_hierarchies
from crio_native.linux.cgroups.path import check_root
from crio_native.linux.cgroups.plan import CgroupPlan, plan_cgroups
from crio_native.linux.cgroups.resources import resource_files

__all__ = [
    "DEFAULT_DEVICE_RULES", "DEVICE_PROGRAM_NAME", "CgroupPlan", "FailedPrecondition",
    "Hierarchy", "InvalidArgument", "Unimplemented", "apply_limits", "attach_device_filter",
    "check_root", "create", "delegation_chain", "device_rule_line", "device_rules",
    "enable_controllers", "freeze", "host_hierarchies", "is_frozen", "kill_all",
    "missing_dirs", "own_cgroups", "plan_cgroups", "pure_v2", "remove", "replace_device_filter",
    "resource_files", "write_limits",
]
