"""The pieces of a pod sandbox other than networking: namespaces pinned under
the runroot, sysctls and hostname applied inside them, the pod's files, and
its /dev/shm.  Each maker has an undo the orchestrator registers at once."""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
from pathlib import Path
from typing import Callable, Protocol

from crio_native._native import ns
from crio_native.errors import Internal, InvalidArgument
from crio_native.linux.nsthread import run_joined
from crio_native.sandbox.record import SandboxRecord
from crio_native.spec import selinux as selinux_spec

NODE = 2


class PodHost(Protocol):
    """What SandboxManager makes on the host for a pod, each with its undo:
    this module's functions of the same names (the module is the default)."""

    def pin_namespaces(self, record: SandboxRecord, pin_root: Path) -> None: ...
    def unpin_namespaces(self, record: SandboxRecord) -> None: ...
    def apply_sysctls_and_hostname(self, record: SandboxRecord) -> None: ...
    def mount_shm(self, record: SandboxRecord) -> None: ...
    def bring_up_loopback(self, record: SandboxRecord) -> None: ...
    def check_loopback(self, record: SandboxRecord) -> None: ...
    def unmount_shm(self, record: SandboxRecord) -> None: ...
    def write_pod_files(self, record: SandboxRecord) -> None: ...
    def remove_directory(self, record: SandboxRecord) -> None: ...
    def unpin_path(self, path: str | Path) -> None: ...
    def unmount_path(self, path: str | Path) -> None: ...


def namespaces_to_create(record: SandboxRecord) -> list[str]:
    """Pod-owned namespaces: host network implies the host's UTS namespace too."""
    wanted = []
    if record.network_mode != NODE:
        wanted += ["net", "uts"]
    if record.ipc_mode != NODE:
        wanted.append("ipc")
    return wanted


def planned_pins(record: SandboxRecord, pin_root: Path) -> dict[str, str]:
    """Where the pod's namespaces will be pinned, known before they are:
    the record carries them first, so a crash while pinning still unpins."""
    names = namespaces_to_create(record)
    if record.userns_uids:
        names.append("user")
    return {name: str(pin_root / name / record.id) for name in names}


def pin_namespaces(record: SandboxRecord, pin_root: Path) -> None:
    pins = planned_pins(record, pin_root)
    if not pins:
        return
    for path in pins.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if "user" in pins:
        # the pod's other namespaces are made inside (owned by) its user namespace
        from crio_native.sandbox.validate import id_map_text

        ns.create_pinned_userns(pins, id_map_text(record.userns_uids),
                                id_map_text(record.userns_gids))
    else:
        ns.create_pinned(pins)
    record.pins = pins


def unpin_namespaces(record: SandboxRecord) -> None:
    for path in record.pins.values():
        ns.unpin(path)
    record.pins = {}


def unpin_path(path: str | Path) -> None:
    """Unpin whatever is pinned at `path` (start-up's sweep of pins no record names)."""
    ns.unpin(str(path))


def unmount_path(path: str | Path) -> None:
    """Unmount `path` (start-up's sweep of pod dirs no record names)."""
    from crio_native._native import mount

    mount.unmount(str(path))


def run_inside(record: SandboxRecord, kinds: list[str], work: Callable[[], None]) -> None:
    """Run `work` on a thread that joined the pod's namespaces of `kinds`."""
    run_joined([(kind, record.pins[kind]) for kind in kinds], work,
               name=f"pod-{record.id[:12]}")


def apply_sysctls_and_hostname(record: SandboxRecord) -> None:
    if not record.pins:
        return

    def work():
        if record.hostname and "uts" in record.pins:
            import socket

            socket.sethostname(record.hostname)
        for name, value in record.sysctls.items():
            path = "/proc/sys/" + name.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(value)
            except FileNotFoundError:
                raise InvalidArgument(
                    f"RunPodSandbox: config.linux.sysctls[{name!r}]: no such sysctl") from None
            except OSError as e:
                raise InvalidArgument(
                    f"RunPodSandbox: config.linux.sysctls[{name!r}]: {e.strerror}") from None

    run_inside(record, [k for k in ("uts", "net", "ipc") if k in record.pins], work)


# struct ifreq (40 bytes on 64-bit Linux): the name, then ifr_flags (a short)
# at the start of the union; <linux/sockios.h>, <net/if.h>
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sh22x"


def _loopback_flags(sock: socket.socket) -> int:
    return struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = _loopback_flags(sock)
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _loopback_state() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return bool(_loopback_flags(sock) & _IFF_UP)


def bring_up_loopback(record: SandboxRecord) -> None:
    """Set `lo` UP in the pod's network namespace: what CNI's loopback plugin
    does on ADD (a link set up), without exec'ing it.  The kernel gives lo
    127.0.0.1/8, and ::1/128 where IPv6 is on in the namespace, as it goes
    up.  Nothing to undo: lo goes with the namespace, and holds no address
    from any pool."""
    if "net" in record.pins:
        run_inside(record, ["net"], _loopback_up)


def check_loopback(record: SandboxRecord) -> None:
    """CNI CHECK's question for lo: is it still UP?  Raises Internal if not."""
    if "net" in record.pins and not run_joined([("net", record.pins["net"])], _loopback_state,
                                               name=f"pod-{record.id[:12]}"):
        raise Internal(f"pod {record.id}: lo is down in its network namespace")


def write_pod_files(record: SandboxRecord, host_resolv: str = "/etc/resolv.conf") -> None:
    """hostname, resolv.conf and hosts, bind-mounted into containers later."""
    directory = Path(record.directory)
    directory.mkdir(parents=True, exist_ok=True)
    hostname = record.hostname or (os.uname().nodename if record.host_network else record.name)
    (directory / "hostname").write_text(hostname + "\n")
    (directory / "resolv.conf").write_text(resolv_conf(record.dns, host_resolv))
    (directory / "hosts").write_text(hosts_file(hostname, record.ips))
    label = pod_file_label(record)
    if label:
        # bound into each container: under the runroot's own label an
        # MCS-constrained container could not read them
        from crio_native.linux.selinux import relabel

        for name in ("hostname", "resolv.conf", "hosts"):
            relabel(directory / name, label)


def pod_file_label(record: SandboxRecord) -> str:
    """The file label of what the pod shares with its containers, at the
    pod's MCS level; "" where SELinux is off (the pod then has no level)."""
    return selinux_spec.file_label(record.selinux_level) if record.selinux_level else ""


def resolv_conf(dns: dict[str, list[str]], host_resolv: str) -> str:
    if not any(dns.values()):
        try:
            return Path(host_resolv).read_text()
        except FileNotFoundError:
            return ""
    lines = [f"nameserver {s}" for s in dns.get("servers", [])]
    if dns.get("searches"):
        lines.append("search " + " ".join(dns["searches"]))
    if dns.get("options"):
        lines.append("options " + " ".join(dns["options"]))
    return "\n".join(lines) + "\n"


def hosts_file(hostname: str, ips: list[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{hostname}" for ip in ips]
    return "\n".join(lines) + "\n"


def shm_mount_point(record: SandboxRecord) -> str:
    """Where the pod's /dev/shm tmpfs goes; "" when the pod shares the
    host's IPC.  Known before the mount, so the record can carry it first
    and a crash at any later point still unmounts it."""
    return "" if record.ipc_mode == NODE else str(Path(record.directory) / "shm")


def mount_shm(record: SandboxRecord) -> None:
    """A private tmpfs for the pod's /dev/shm, unless the pod shares the host's IPC."""
    target = shm_mount_point(record)
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    from crio_native._native import mount

    data = f"mode=1777,size={record.shm_size}"
    label = pod_file_label(record)
    if label:
        data += f',context="{label}"'   # quoted: a level holds commas
    mount.mount("shm", target, "tmpfs", mount.MS_NOSUID | mount.MS_NODEV | mount.MS_NOEXEC,
                data)
    record.shm_path = target


def unmount_shm(record: SandboxRecord) -> None:
    """Unmount the pod's /dev/shm (nothing mounted there is fine)."""
    if record.shm_path:
        from crio_native._native import mount

        mount.unmount(record.shm_path)
        record.shm_path = ""


def remove_directory(record: SandboxRecord) -> None:
    if record.shm_path:
        raise Internal(f"pod {record.id}: refusing to remove {record.directory} with shm mounted")
    if record.directory:
        shutil.rmtree(record.directory, ignore_errors=True)
