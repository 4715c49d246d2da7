"""SELinux at the CRI level: the daemon over real gRPC, on a host running
SELinux enforcing with a policy that knows container_t, container_file_t
and spc_t (contrib/selinux/crio_native.cil).  Checked from inside the
container and from the host: each pod gets its own MCS pair, shared by its
containers and their exec'd processes; the container's mounts and files
carry the file label at that level; privileged containers run as spc_t;
SELinuxOptions in the request win; and MCS keeps one pod out of another's
files.

Runs in the vmrun.sh VM: `make test` (or `make test-selinux`) boots it with
`--selinux enforcing --selinux-policy build/selinux/policy.33` and runs
`-m vm_selinux`; elsewhere the requires_selinux marker skips it."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.daemon import Daemon
from tests.e2e.test_container_security import (exec_sync, remove_pod, run_once, shell,
                                               start_pod, start_running)
from tests.e2e.test_containers import (busybox_image, cstatus,  # noqa: F401
                                       remove_all_pods, rpc_code, serving_image)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.vm_selinux, pytest.mark.requires_selinux]

SELF_LABEL = "cat /proc/self/attr/current"
LEVEL = r"s0:c(\d+),c(\d+)"
XATTR = "security.selinux"


def _enforcing() -> bool:
    try:
        return Path("/sys/fs/selinux/enforce").read_text().strip() == "1"
    except OSError:
        return False


def _label(text: str) -> str:
    """A label as the kernel prints it (NUL-terminated, no newline)."""
    return text.strip().rstrip("\0")


def _pod_level(label: str) -> str:
    """The MCS pair of a default container label, checked for its shape."""
    m = re.fullmatch(rf"system_u:system_r:container_t:({LEVEL})", label)
    assert m, f"not a container_t label with a category pair: {label!r}"
    a, b = int(m.group(2)), int(m.group(3))
    assert a < b < 1024, label
    return m.group(1)


def _file_label(path: str) -> str:
    return os.getxattr(path, XATTR, follow_symlinks=False).rstrip(b"\0").decode()


def _pid(d, cid: str) -> int:
    return json.loads(cstatus(d, cid, verbose=True).info["info"])["pid"]


def _sandbox_level(d, pod: str) -> str:
    info = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod, verbose=True)).info["info"]
    return json.loads(info)["selinuxLevel"]


def _selinux_options(config, **opts) -> api_pb2.ContainerConfig:
    for key, value in opts.items():
        setattr(config.linux.security_context.selinux_options, key, value)
    return config


def _pod_with_level(d, handler: str, name: str, level: str) -> str:
    """A host-network pod whose request names its MCS level."""
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    sc = config.linux.security_context
    sc.namespace_options.network = api_pb2.NODE
    sc.selinux_options.level = level
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


# The VM emulates its CPU: the daemon's imports alone take about as long
# there as tests/e2e/daemon.py waits on a real host, so one daemon serves
# the whole module, given longer to start.
VM_START_TIMEOUT = 240.0


def start_slow(d: Daemon) -> None:
    """Start `d`, giving it VM_START_TIMEOUT to answer."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tests.e2e.daemon.START_TIMEOUT", VM_START_TIMEOUT)
        d.start()


@pytest.fixture(scope="module")
def sel(busybox_image, tmp_path_factory):  # noqa: F811
    """A daemon with the busybox image, for every test here; each test's
    pods go when it ends."""
    base = tmp_path_factory.mktemp("cri-selinux")
    d = Daemon(base / "daemon")
    try:
        start_slow(d)
        print(f"SELinux enforcing={_enforcing()}")
        yield from serving_image(d, busybox_image, base)
    finally:
        d.stop()


# Pod names carry the handler: the module's daemon keeps one pod log
# directory per name, and a CRI log file is appended to, never replaced.
@pytest.fixture(autouse=True)
def _pods_removed(sel):
    yield
    remove_all_pods(sel)


# ---- (a) per-pod MCS levels --------------------------------------------------------

def test_pod_containers_share_a_level_other_pods_get_another(sel, handler):
    d = sel
    pod = start_pod(d, handler, f"sel-a-{handler}")
    level = _sandbox_level(d, pod)
    sleeper = start_running(d, pod, shell(d, "sleep 1000", name="sleeper"))
    code, out = exec_sync(d, sleeper, SELF_LABEL)
    assert code == 0, out
    exec_label = _label(out)
    assert _pod_level(exec_label) == level

    code, out = run_once(d, pod, shell(d, SELF_LABEL, name="second"))
    assert code == 0, out
    assert _label(out) == exec_label == f"system_u:system_r:container_t:{level}"
    # the container's init, seen from the host
    init = Path(f"/proc/{_pid(d, sleeper)}/attr/current").read_text()
    assert _label(init) == exec_label

    other = start_pod(d, handler, f"sel-b-{handler}")
    code, out = run_once(d, other, shell(d, SELF_LABEL))
    assert code == 0, out
    other_level = _pod_level(_label(out))
    print(f"pod a: {level}, pod b: {other_level}")
    assert other_level == _sandbox_level(d, other) != level
    remove_pod(d, other)
    remove_pod(d, pod)


# ---- (b) mount labels -----------------------------------------------------------

# Inside the container: the overlay rootfs, the /dev tmpfs, the pod's /dev/shm,
# the pod files bound over /etc and a file the container wrote.
LABELLED_PATHS = ("/", "/bin/busybox", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                  "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/tmp/made-here")


def test_rootfs_and_mounts_carry_the_mount_label(sel, handler):
    d = sel
    pod = start_pod(d, handler, f"sel-mnt-{handler}")
    level = _sandbox_level(d, pod)
    cid = start_running(d, pod, shell(d, "echo x > /tmp/made-here && sleep 1000"))
    code, out = exec_sync(d, cid, "cat /tmp/made-here")
    assert (code, out) == (0, "x\n")
    root = f"/proc/{_pid(d, cid)}/root"
    found = {p: _file_label(root + p) for p in LABELLED_PATHS}
    print("\n".join(f"{p}: {label}" for p, label in found.items()))
    want = f"system_u:object_r:container_file_t:{level}"
    assert {p: label for p, label in found.items() if label != want} == {}
    remove_pod(d, pod)


# ---- (c) privileged containers -----------------------------------------------------

def test_privileged_container_runs_as_spc_t(sel, handler):
    d = sel
    pod = start_pod(d, handler, f"sel-priv-{handler}", privileged=True)
    level = _sandbox_level(d, pod)
    config = shell(d, f"{SELF_LABEL}; echo; busybox mount -t tmpfs scratch /tmp "
                      "&& echo mounted")
    config.linux.security_context.privileged = True
    code, out = run_once(d, pod, config)
    assert code == 0, out
    label, mounted = out.split()
    assert (_label(label), mounted) == (f"system_u:system_r:spc_t:{level}", "mounted")
    remove_pod(d, pod)


# ---- (d) the request's SELinuxOptions ------------------------------------------------

def test_container_selinux_options_are_honoured(sel, handler):
    d = sel
    pod = start_pod(d, handler, f"sel-opts-{handler}")
    cid = start_running(d, pod, _selinux_options(
        shell(d, "sleep 1000", name="leveled"), level="s0:c7,c8"))
    code, out = exec_sync(d, cid, SELF_LABEL)
    assert (code, _label(out)) == (0, "system_u:system_r:container_t:s0:c7,c8"), out
    dev = _file_label(f"/proc/{_pid(d, cid)}/root/dev")
    assert dev == "system_u:object_r:container_file_t:s0:c7,c8"

    code, out = run_once(d, pod, _selinux_options(shell(d, SELF_LABEL, name="typed"),
                                                   type="spc_t"))
    assert code == 0, out
    assert _label(out) == f"system_u:system_r:spc_t:{_sandbox_level(d, pod)}"
    remove_pod(d, pod)


def test_pod_selinux_level_is_its_containers_level(sel, handler):
    d = sel
    pod = _pod_with_level(d, handler, f"sel-podlevel-{handler}", "s0:c100,c200")
    assert _sandbox_level(d, pod) == "s0:c100,c200"
    code, out = run_once(d, pod, shell(d, SELF_LABEL))
    assert code == 0, out
    assert _label(out) == "system_u:system_r:container_t:s0:c100,c200"
    remove_pod(d, pod)


def test_malformed_pod_level_is_refused_before_anything_is_made(sel):
    """The pod's level goes into its /dev/shm mount options."""
    d = sel
    code, msg = rpc_code(lambda: _pod_with_level(d, "", "sel-bad", 's0",nodev'))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
    assert "selinux_options.level" in msg, msg
    assert not d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items


# ---- MCS between pods -------------------------------------------------------------

def _volume(config, host: Path, relabel: bool) -> api_pb2.ContainerConfig:
    config.mounts.append(api_pb2.Mount(container_path="/vol", host_path=str(host),
                                       selinux_relabel=relabel))
    return config


def test_mcs_keeps_a_pod_out_of_another_pods_volume(sel, handler, tmp_path):
    if not _enforcing():
        pytest.skip("MCS denials need SELinux enforcing")
    d = sel
    vol = tmp_path / "vol"
    vol.mkdir()
    owner = start_pod(d, handler, f"sel-owner-{handler}")
    code, out = run_once(d, owner, _volume(
        shell(d, "echo mine > /vol/f && cat /vol/f"), vol, relabel=True))
    assert (code, out) == (0, "mine\n")
    assert _file_label(str(vol / "f")) == \
        f"system_u:object_r:container_file_t:{_sandbox_level(d, owner)}"

    other = start_pod(d, handler, f"sel-other-{handler}")
    code, out = run_once(d, other, _volume(
        shell(d, "cat /vol/f 2>&1; echo rc=$?"), vol, relabel=False))
    print(out)
    assert "Permission denied" in out and "rc=1" in out, out
    remove_pod(d, other)
    remove_pod(d, owner)
