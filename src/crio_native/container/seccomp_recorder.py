"""The seccomp profile recorder: the pod annotation
`seccomp-recorder.crio-native.io/<container>` = NAME runs that container in
learn mode, and the syscalls it made become `<seccomp_profile_root>/NAME.json`.

Learn mode is a user-notification filter that notifies on every syscall
this architecture has (SCMP_ACT_NOTIFY cannot be the default action, so
each name gets a rule, on the native and the compat architecture), with the
daemon as its agent (container/seccomp_notifier.py): each call is noted and
answered SECCOMP_USER_NOTIF_FLAG_CONTINUE (Linux 5.5), so it runs as if no
filter were there.  We chose this over SECCOMP_RET_LOG read back from the
audit log: the kernel writes those lines to auditd or the kernel ring
buffer, rate-limited, with a pid and no container, which a daemon cannot
rely on reading (no auditd here, a shared and lossy dmesg); the notify fd is
the container's own and loses nothing.  The price is a round trip to the
daemon on every syscall the container makes, which is acceptable in learn
mode only: never record in production.

The container itself still makes two calls once its filter is loaded and
before the daemon holds the notify fd (sendmsg, which hands it over, and
write; linux.seccomp.NOTIFY_REFUSED): they are allowed unseen and always in
the profile.  The runtime's own calls after that (the rest of its setup, the
start barrier, execve) are recorded like the workload's, as the profile,
loaded at the same point, needs them too.

Each time a notify fd hangs up (the init or an exec'd process ends), and at
removal, the profile is written again with everything seen so far: its
`defaultAction` is SCMP_ACT_ERRNO, the observed syscalls are allowed,
sorted, and `architectures` lists the host's and its compat ones.

runc and crun: their listenerPath is the same mechanism (runc >= 1.1, crun
>= 0.19) and the daemon's agent serves them unchanged, but their window
between loading the filter and handing over the fd is wider (runc's init is
Go: its runtime may call futex, mmap, nanosleep there), so learn mode would
need those left unseen as well; only the built-in handler is tested."""
from __future__ import annotations

import errno
import logging
import os
import platform
import re
from typing import TYPE_CHECKING, Any

from crio_native.errors import InvalidArgument
from crio_native.linux.seccomp import NOTIFY_REFUSED
from crio_native.logsetup import fields
from crio_native.spec.allowed import feature_annotation
from crio_native.spec.inputs import RPC
from crio_native.spec.seccomp import NATIVE_ARCH
from crio_native.state.files import atomic_write_json

if TYPE_CHECKING:
    from contextlib import ExitStack

    from crio_native.container.seccomp_notifier import SeccompNotifier, _Watch
    from crio_native.spec.inputs import SpecBuild, SpecInputs

log = logging.getLogger(__name__)

ANNOTATION = "seccomp-recorder.crio-native.io"
METADATA_PREFIX = "crio-native-recorder:"
# host arch -> the compat arches a 64-bit kernel also runs
COMPAT_ARCHES = {"SCMP_ARCH_X86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                 "SCMP_ARCH_AARCH64": ["SCMP_ARCH_ARM"],
                 "SCMP_ARCH_PPC64LE": [], "SCMP_ARCH_S390X": ["SCMP_ARCH_S390"],
                 "SCMP_ARCH_RISCV64": []}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def architectures(machine: str = "") -> list[str]:
    native = NATIVE_ARCH.get(machine or platform.machine(),
                             "SCMP_ARCH_" + (machine or platform.machine()).upper())
    return [native, *COMPAT_ARCHES.get(native, [])]


def profile_name(inputs: SpecInputs) -> str | None:
    """NAME from the pod's recorder annotation for this container, where
    its handler allows it; a name that is not a plain file name is refused."""
    pod = inputs.sandbox
    key = f"{ANNOTATION}/{inputs.config.metadata.name}"
    value = feature_annotation(inputs.daemon, pod.runtime_handler, pod.annotations, key,
                               inputs.container_id)
    if value is None:
        return None
    name = value.strip().removesuffix(".json")
    if not _NAME.match(name):
        raise InvalidArgument(f"{RPC}: pod annotation {key}: want a profile name (letters, "
                              f"digits, '.', '_', '-'), got {value!r}")
    return name


def learning_section(listener_path: str, syscall_names: list[str],
                     machine: str = "") -> dict[str, Any]:
    """Every syscall notifies the agent at `listener_path`, except the two
    the container makes before the agent holds the fd."""
    names = sorted(set(syscall_names) - set(NOTIFY_REFUSED))
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": architectures(machine),
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}],
            "listenerPath": listener_path}


def recorded_profile(seen: set[str], machine: str = "") -> dict[str, Any]:
    """The OCI seccomp profile that allows what was seen and nothing else."""
    allowed = sorted({n for n in seen if not n.startswith("syscall#")} | set(NOTIFY_REFUSED))
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "architectures": architectures(machine),
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}


def write_profile(path: str, watch: _Watch, machine: str = "") -> None:
    seen = frozenset(watch.recorded or ())
    if not seen:
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    atomic_write_json(path, recorded_profile(set(seen), machine))
    os.chmod(path, 0o644)
    log.info("seccomp recorder wrote profile", extra=fields(id=watch.container_id, path=path,
                                                            syscalls=len(seen)))


def attach(notifier: SeccompNotifier, inputs: SpecInputs, build: SpecBuild,
           undo: ExitStack, syscall_names: list[str]) -> bool:
    """CreateContainer: learn mode for a container the recorder annotation
    names (its own profile, if any, is set aside); True if so."""
    name = profile_name(inputs)
    if name is None:
        return False
    path = os.path.join(inputs.daemon.runtime.seccomp_profile_root, f"{name}.json")
    listener = notifier.path_for(inputs.container_id)
    section = learning_section(listener, syscall_names, inputs.machine)
    section["listenerMetadata"] = METADATA_PREFIX + name
    machine = inputs.machine
    notifier.listen(inputs.container_id, "record", {}, recorded=set(),
                    on_hangup=lambda w: write_profile(path, w, machine))
    undo.callback(notifier.forget, inputs.container_id)
    build.linux["seccomp"] = section
    log.info("seccomp recorder: container runs in learn mode",
             extra=fields(id=inputs.container_id, profile=path))
    return True
