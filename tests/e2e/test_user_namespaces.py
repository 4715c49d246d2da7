"""User namespaces (KEP-127) over real gRPC, as a kubelet asks for them: a pod
with userns_options mode POD and one 65536-long uid and gid range at a
multiple of 65536 gets its own user namespace, pinned with the pod's other
namespaces; every container joins it; the image's layers and the volumes
are idmapped mounts, so nothing is chowned.

Volumes: an idmapped bind shows the host's files through the pod's maps in
both directions, so what the container's root writes is owned by uid 0 *on
disk*, and a host file of uid 1000 is uid 1000 inside (KEP-127's "with idmap
mounts" example; containerd and CRI-O behave the same).  The writable layer
is not a volume: a file the container creates there is owned on the host by
the mapped host uid.

runc 1.1.5 (Debian 12) has no idmapped mounts and crun 1.8 no `features`
command: Status does not advertise user namespaces for them and
RunPodSandbox refuses such a pod on them."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e import cni
from tests.e2e.test_containers import busybox_image, create, cstatus  # noqa: F401
from tests.e2e.test_containers import serving_image
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

HOST_BASE = 65536 * 37          # what the kubelet picks: a multiple of 65536
LENGTH = 65536


def userns(mode=api_pb2.POD, uids=((0, HOST_BASE, LENGTH),), gids=((0, HOST_BASE, LENGTH),)):
    def maps(ms):
        return [api_pb2.IDMapping(container_id=c, host_id=h, length=n) for c, h, n in ms]
    return api_pb2.UserNamespace(mode=mode, uids=maps(uids), gids=maps(gids))


@pytest.fixture
def udaemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    """A daemon with the real bridge CNI network and the busybox image."""
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    d.ipam_dir = tmp_path / "ipam"
    cni.write_network(d.network_dir, d.ipam_dir)
    d.start()
    yield from serving_image(d, busybox_image, tmp_path)
    d.stop()
    cni.delete_bridge()


def pod_config(d, name="upod", user=None) -> api_pb2.PodSandboxConfig:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    opts = config.linux.security_context.namespace_options
    opts.pid = api_pb2.CONTAINER
    opts.userns_options.CopyFrom(user if user is not None else userns())
    return config


def run_pod(d, config, handler="") -> str:
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def container(d, pod_config, name, mounts=()) -> api_pb2.ContainerConfig:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=d.image_name), command=["sleep", "1000"],
        log_path=f"{name}/0.log", mounts=list(mounts))
    # the kubelet copies the pod's namespace options into each container's
    config.linux.security_context.namespace_options.CopyFrom(
        pod_config.linux.security_context.namespace_options)
    return config


def start(d, pod, pod_config, name, mounts=()) -> str:
    cid = create(d, pod, container(d, pod_config, name, mounts), pod_config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return cid


def sh(d, cid, script) -> str:
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script],
                                                   timeout=20))
    assert r.exit_code == 0, (script, r.stdout, r.stderr)
    return r.stdout.decode()


def pin_of(d, pod) -> Path:
    return d.base / "run" / "ns" / "user" / pod


def own_mounts(d) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(d.base) in line.split()[4]]


def test_a_pod_with_a_user_namespace_runs_idmapped_containers(udaemon, tmp_path):
    d = udaemon
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "from-host").write_text("x")
    os.chown(volume / "from-host", 1000, 1000)
    config = pod_config(d)
    pod = run_pod(d, config)
    pin = pin_of(d, pod)
    assert pin.exists()
    st = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    assert st.linux.namespaces.options.userns_options == userns()
    mounts = [api_pb2.Mount(container_path="/data", host_path=str(volume))]
    c1 = start(d, pod, config, "c1", mounts)
    c2 = start(d, pod, config, "c2")

    # the mapping, and root inside
    expected_map = f"0 {HOST_BASE} {LENGTH}"
    assert sh(d, c1, "cat /proc/self/uid_map").split() == expected_map.split()
    assert sh(d, c1, "cat /proc/self/gid_map").split() == expected_map.split()
    assert sh(d, c1, "id -u; id -g").split() == ["0", "0"]
    # the host sees the mapped uid on the container's process
    pid = json.loads(cstatus(d, c1, verbose=True).info["info"])["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(HOST_BASE)] * 4

    # both containers in the pod's pinned user namespace
    ns1 = sh(d, c1, "readlink /proc/self/ns/user").strip()
    ns2 = sh(d, c2, "readlink /proc/self/ns/user").strip()
    assert ns1 == ns2 == f"user:[{os.stat(pin).st_ino}]"
    assert ns1 != os.readlink("/proc/self/ns/user")

    # the image's files are root's inside, through idmapped layers: on disk
    # they still belong to uid 0 (nothing was chowned)
    assert sh(d, c1, "stat -c %u:%g / /bin /bin/busybox /etc").split() == ["0:0"] * 4
    layers = d.base / "root"
    owners = {os.lstat(os.path.join(top, f)).st_uid
              for top, _dirs, files in os.walk(layers / "storage" if (layers / "storage").exists()
                                               else layers)
              for f in files if "/containers/" not in top}
    assert owners and max(owners) < HOST_BASE
    # the writable layer: a new file is the mapped host uid's on the host
    sh(d, c1, "echo hi > /made-here")
    rootfs = json.loads(cstatus(d, c1, verbose=True).info["info"])["runtimeSpec"]["root"]["path"]
    upper = Path(rootfs).parent / "upper"
    assert os.stat(upper / "made-here").st_uid == HOST_BASE

    # the volume is idmapped: on-disk ids are the container's ids
    assert sh(d, c1, "stat -c %u:%g /data/from-host").split() == ["1000:1000"]
    sh(d, c1, "echo v > /data/new-file; mkdir /data/new-dir")
    assert sh(d, c1, "stat -c %u:%g /data/new-file").split() == ["0:0"]
    assert (os.stat(volume / "new-file").st_uid, os.stat(volume / "new-file").st_gid) == (0, 0)
    assert os.stat(volume / "new-dir").st_uid == 0
    # the pod's /etc/hosts is an idmapped bind too: root's, writable by root
    assert sh(d, c1, "stat -c %u /etc/hosts; echo '# mine' >> /etc/hosts; echo ok").split() \
        == ["0", "ok"]

    # teardown leaves no pin and no mount
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert not pin.exists()
    assert own_mounts(d) == []


def test_a_volume_that_cannot_be_idmapped_is_refused_naming_it(udaemon):
    """sysfs has no idmapped mounts: the container is refused with the
    mount and its source named, and nothing of it is left."""
    d = udaemon
    config = pod_config(d, name="sysvol")
    pod = run_pod(d, config)
    mounts = [api_pb2.Mount(container_path="/k", host_path="/sys/kernel")]
    with pytest.raises(grpc.RpcError) as e:
        create(d, pod, container(d, config, "c", mounts), config)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/sys/kernel cannot be an idmapped mount" in e.value.details()
    assert re.search(r"mounts\[\d+\]\.source", e.value.details())
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert own_mounts(d) == []


def test_proc_and_sysfs_of_a_container_in_the_pods_user_namespace(udaemon):
    """proc and sysfs are mounted for a container in the pod's user
    namespace: its own pid namespace, the pod's network namespace."""
    d = udaemon
    config = pod_config(d, name="procpod")
    # set by the daemon inside the pod's namespaces, which the user namespace owns
    config.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "80"
    pod = run_pod(d, config)
    c = start(d, pod, config, "c")
    out = sh(d, c, "hostname; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
                   "ls /sys/class/net; cat /proc/1/cmdline | tr '\\0' ' '")
    lines = out.split("\n")
    assert lines[:2] == ["procpod", "80"]
    assert "eth0" in out and "sleep 1000" in lines[-1]
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


@pytest.mark.parametrize("user,field", [
    (userns(uids=((0, HOST_BASE, 1000), (1000, HOST_BASE + 1000, 1000))), "userns_options.uids"),
    (userns(gids=()), "userns_options.gids"),
    (userns(uids=((1, HOST_BASE, LENGTH),)), "userns_options.uids[0].container_id"),
    (userns(mode=api_pb2.CONTAINER), "userns_options.mode"),
    (userns(mode=api_pb2.TARGET), "userns_options.mode"),
    (userns(mode=api_pb2.NODE), "userns_options.uids"),
])
def test_user_namespace_requests_the_cri_does_not_allow_are_refused(udaemon, user, field):
    d = udaemon
    with pytest.raises(grpc.RpcError) as e:
        run_pod(d, pod_config(d, name="bad", user=user))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in e.value.details()
    assert not d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert not list((d.base / "run" / "ns").glob("*/*"))


def test_a_shared_pid_namespace_is_held_inside_the_pods_user_namespace(udaemon):
    """shareProcessNamespace: the infra process holding the pod's PID
    namespace joins the user namespace too, and sees the containers."""
    d = udaemon
    config = pod_config(d, name="sharedpid")
    config.linux.security_context.namespace_options.pid = api_pb2.POD
    pod = run_pod(d, config)
    c = start(d, pod, config, "c")
    out = sh(d, c, "cat /proc/1/uid_map; readlink /proc/1/ns/user; readlink /proc/self/ns/user;"
                   " cat /proc/1/cmdline")
    lines = out.split()
    assert lines[:3] == ["0", str(HOST_BASE), str(LENGTH)]
    assert lines[3] == lines[4] == f"user:[{os.stat(pin_of(d, pod)).st_ino}]"
    assert "pause" in lines[5]      # pid 1 is the pod's infra process
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert own_mounts(d) == []


def test_node_mode_without_mappings_is_the_hosts_user_namespace(udaemon):
    """hostUsers: true, as the kubelet sends it."""
    d = udaemon
    config = pod_config(d, name="hostusers",
                        user=api_pb2.UserNamespace(mode=api_pb2.NODE))
    pod = run_pod(d, config)
    assert not pin_of(d, pod).exists()
    c = start(d, pod, config, "c")
    assert sh(d, c, "readlink /proc/self/ns/user").strip() == os.readlink("/proc/self/ns/user")
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def runtime_features(d) -> dict[str, bool]:
    handlers = d.runtime.Status(api_pb2.StatusRequest()).runtime_handlers
    return {h.name: h.features.user_namespaces for h in handlers}


def runc_has_idmap() -> bool:
    out = subprocess.run(["runc", "features"], capture_output=True, text=True)
    if out.returncode != 0:
        return False
    linux = json.loads(out.stdout).get("linux") or {}
    return ((linux.get("mountExtensions") or {}).get("idmap") or {}).get("enabled") is True


def test_status_advertises_user_namespaces_only_where_they_work(udaemon):
    d = udaemon
    features = runtime_features(d)
    # this kernel (6.x): idmapped layers for overlayfs (5.19+), user namespaces on
    assert features["builtin"] is True and features[""] is True
    # Debian 12's runc 1.1.5 declares no idmapped mounts; crun 1.8.1 has no
    # `features` command at all: neither can run these pods without chowning
    assert features["runc"] is runc_has_idmap() is False
    assert features["crun"] is False


@pytest.mark.parametrize("handler", ["runc", "crun"])
def test_handlers_without_user_namespaces_refuse_such_pods(udaemon, handler):
    d = udaemon
    with pytest.raises(grpc.RpcError) as e:
        run_pod(d, pod_config(d, name=f"on-{handler}"), handler=handler)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "userns_options" in e.value.details() and handler in e.value.details()
