"""build_container_spec: CreateContainer's OCI config.json as a list of
named steps.  The order is part of the contract: user after env (HOME),
seccomp after capabilities (rules depend on the caps held), CDI after env,
user and the other mounts and devices (it extends them)."""
from __future__ import annotations

from crio_native.spec import annotations as spec_annotations
from crio_native.spec import (apparmor, capabilities, cdi, devices, landlock, mounts, namespaces,
                              process, resources, seccomp, selinux, user)
from crio_native.spec.inputs import Option, SpecBuild, SpecInputs, new_build

STEPS: tuple[Option, ...] = (
    mounts.with_root,
    process.with_args,
    process.with_env,
    process.with_cwd,
    process.with_terminal,
    user.with_user,
    capabilities.with_capabilities,
    process.with_no_new_privs,
    process.with_rlimits,
    process.with_oom_score_adj,
    process.with_stop_signal,
    process.with_log_path,
    mounts.with_default_mounts,
    mounts.with_pod_files,
    mounts.with_request_mounts,
    mounts.with_image_volumes,
    devices.with_privileged_devices,
    devices.with_devices,
    cdi.with_cdi_devices,
    devices.with_device_cgroup,
    namespaces.with_namespaces,
    namespaces.with_sysctls,
    mounts.with_masked_paths,
    seccomp.with_seccomp,
    selinux.with_selinux,
    apparmor.with_apparmor,
    resources.with_resources,
    resources.with_cgroups_path,
    spec_annotations.with_annotations,
    landlock.with_landlock,
)


def build_container_spec(inputs: SpecInputs, steps: tuple[Option, ...] = STEPS) -> SpecBuild:
    """The OCI runtime spec (SpecBuild.spec) for one container, plus what the
    caller must do around it: relabel host paths, create volume dirs, open
    the log file, remember the stop signal and stdin mode.  Raises
    InvalidArgument naming the request field for bad input."""
    build = new_build()
    for step in steps:
        step(build, inputs)
    return build
