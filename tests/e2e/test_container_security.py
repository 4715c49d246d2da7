"""Security and spec scenarios over real gRPC, each run by the built-in
runtime and by runc (the pod's runtime_handler; its containers inherit it)
and checked from inside the container: seccomp modes and profiles, a
read-only rootfs, users and groups, host-path mounts and their propagation,
capabilities, privileged containers, CDI devices, and the pod's hostname,
/etc/hosts and /etc/resolv.conf."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.linux.capabilities import CAPABILITIES, last_cap
from tests.e2e.test_containers import (container_config, create, cstatus, log_entries,
                                       rpc_code, serving_image, wait_exited)
from tests.fixtures.oci_builder import ImageBuilder, Pusher, symlink
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

EXTRA_APPLETS = ("unshare", "grep", "touch", "mkdir", "mount", "umount", "readlink", "cut",
                 "head", "wc", "hostname", "tr", "rm")
CNI_PLUGIN_DIR = "/usr/lib/cni"
CDI_DIR = Path("/var/run/cdi")
SC = api_pb2.SecurityProfile


# ---- fixtures -----------------------------------------------------------------

@pytest.fixture(scope="module")
def security_image(registry):  # noqa: F811
    """busybox-static with the extra applets these scenarios run."""
    image = (ImageBuilder().busybox()
             .add_layer([symlink(f"bin/{a}", "busybox") for a in EXTRA_APPLETS])
             .build())
    Pusher(registry.url).push_image("e2e/secbox", "1", image)
    return f"{registry.host}/e2e/secbox:1", image


@pytest.fixture
def sdaemon(daemon_factory, security_image, tmp_path):
    """A daemon with the image pulled and a loopback-only CNI network (pods
    with their own network and UTS namespaces, no links on the host); its
    pods go at teardown."""
    d = daemon_factory("--cni-plugin-dir", CNI_PLUGIN_DIR)
    d.network_dir.mkdir(parents=True, exist_ok=True)
    (d.network_dir / "10-crn-lo.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "crn-lo", "plugins": [{"type": "loopback"}]}))
    yield from serving_image(d.start(), security_image, tmp_path)


# ---- helpers ----------------------------------------------------------------

def start_pod(d, handler: str, name: str = "pod", *, host_network: bool = True,
              privileged: bool = False, dns: api_pb2.DNSConfig | None = None) -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    if dns is not None:
        config.dns_config.CopyFrom(dns)
    sc = config.linux.security_context
    sc.privileged = privileged
    sc.namespace_options.pid = api_pb2.CONTAINER
    sc.namespace_options.network = api_pb2.NODE if host_network else api_pb2.POD
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def remove_pod(d, pod: str) -> None:
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))


def shell(d, script: str, name: str = "c") -> api_pb2.ContainerConfig:
    return container_config(d, name=name, command=["sh", "-c", script])


def log_text(path: Path) -> str:
    """The container's output (both streams, in order) from its CRI log."""
    out = []
    for _stream, tag, text in log_entries(path):
        out.append(text if tag == "P" else text + "\n")
    return "".join(out)


def run_once(d, pod: str, config: api_pb2.ContainerConfig) -> tuple[int, str]:
    """Create and start a container, wait for its exit; (exit code, output)."""
    cid = create(d, pod, config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    st = wait_exited(d, cid, timeout=30)
    assert st.state == api_pb2.CONTAINER_EXITED, f"{config.metadata.name} did not exit"
    return st.exit_code, log_text(Path(st.log_path))


def start_running(d, pod: str, config: api_pb2.ContainerConfig) -> str:
    cid = create(d, pod, config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    return cid


def exec_sync(d, cid: str, script: str) -> tuple[int, str]:
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script],
                                                   timeout=10))
    return r.exit_code, (r.stdout + r.stderr).decode()


STATUS_FIELDS = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' " \
                "/proc/self/status"


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                           "Seccomp"):
            out[key] = value.strip()
    return out


def cap_names(mask_hex: str) -> set[str]:
    mask = int(mask_hex, 16)
    return {name for name, bit in CAPABILITIES.items() if mask >> bit & 1} | \
        {f"bit{b}" for b in range(64) if mask >> b & 1 and b not in CAPABILITIES.values()}


def caps_config(d, add=(), drop=(), name="caps") -> api_pb2.ContainerConfig:
    config = shell(d, STATUS_FIELDS, name=name)
    caps = config.linux.security_context.capabilities
    caps.add_capabilities.extend(add)
    caps.drop_capabilities.extend(drop)
    return config


DEFAULT_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID",
                "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_KILL"}


# ---- 1. seccomp ---------------------------------------------------------------

def with_seccomp(config, profile_type, localhost_ref=""):
    config.linux.security_context.seccomp.profile_type = profile_type
    config.linux.security_context.seccomp.localhost_ref = localhost_ref
    return config


UNSHARE_PROBE = STATUS_FIELDS + "; unshare -U true 2>&1; echo unshare=$?"


def test_seccomp_runtime_default_blocks_unshare(sdaemon, handler):
    d = sdaemon
    pod = start_pod(d, handler)
    code, out = run_once(d, pod, with_seccomp(shell(d, UNSHARE_PROBE), SC.RuntimeDefault))
    assert code == 0, out
    assert status_fields(out)["Seccomp"] == "2"
    assert "Operation not permitted" in out and "unshare=0" not in out, out
    # No seccomp field at all is unconfined, as with CRI-O 1.36's defaults
    # (runtime.seccomp_use_default_when_empty makes it RuntimeDefault)
    code, out = run_once(d, pod, shell(d, UNSHARE_PROBE, name="unset"))
    assert status_fields(out)["Seccomp"] == "0" and "unshare=0" in out, out
    remove_pod(d, pod)


def test_seccomp_unconfined_allows_what_the_caps_allow(sdaemon, handler):
    d = sdaemon
    pod = start_pod(d, handler)
    # A user namespace needs no capability: only the filter stood in the way.
    code, out = run_once(d, pod, with_seccomp(shell(d, UNSHARE_PROBE), SC.Unconfined))
    assert code == 0, out
    assert status_fields(out)["Seccomp"] == "0"
    assert "unshare=0" in out, out
    # ... while the capability set still holds: mounting needs CAP_SYS_ADMIN.
    code, out = run_once(d, pod, with_seccomp(shell(
        d, "mkdir -p /tmp/m && mount -t tmpfs x /tmp/m 2>&1; echo mount=$?", name="mnt"),
        SC.Unconfined))
    assert "permission denied" in out and "mount=1" in out, out
    remove_pod(d, pod)


def test_seccomp_localhost_profile_missing_is_invalid_argument(sdaemon, handler, tmp_path):
    d = sdaemon
    pod = start_pod(d, handler)
    missing = tmp_path / "no-such-profile.json"
    code, msg = rpc_code(lambda: create(d, pod, with_seccomp(
        shell(d, "true"), SC.Localhost, str(missing))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
    assert str(missing) in msg and "seccomp" in msg, msg
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    remove_pod(d, pod)


def test_seccomp_localhost_profile_denies_mkdir(sdaemon, handler, tmp_path):
    d = sdaemon
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    pod = start_pod(d, handler)
    code, out = run_once(d, pod, with_seccomp(shell(
        d, STATUS_FIELDS + "; touch /tmp/f && echo touched; mkdir /tmp/d"),
        SC.Localhost, str(profile)))
    assert code != 0, out
    assert status_fields(out)["Seccomp"] == "2"
    assert "touched" in out
    assert "mkdir: can't create directory '/tmp/d': Operation not permitted" in out, out
    remove_pod(d, pod)


# ---- 2. read-only rootfs --------------------------------------------------------

def test_readonly_rootfs(sdaemon, handler):
    d = sdaemon
    pod = start_pod(d, handler)
    config = shell(d, "grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6;"
                      " touch /x 2>&1; echo root=$?;"
                      " touch /etc/hosts 2>&1; echo hosts=$?;"
                      " touch /dev/shm/x && echo shm=ok;"
                      " touch /x")
    config.linux.security_context.readonly_rootfs = True
    code, out = run_once(d, pod, config)
    assert code != 0, out
    lines = out.splitlines()
    assert lines[0].split(",")[0] == "ro", out
    assert "touch: /x: Read-only file system" in out and "root=1" in out, out
    assert "hosts=1" in out, out            # the pod's files follow the rootfs
    assert "shm=ok" in out, out             # /dev/shm is its own tmpfs
    remove_pod(d, pod)


# ---- 3. users and groups --------------------------------------------------------

def test_run_as_user_group_and_supplemental_groups(sdaemon, handler):
    d = sdaemon
    pod = start_pod(d, handler)
    config = shell(d, "id; grep -E '^(Uid|Gid|Groups):' /proc/self/status")
    sc = config.linux.security_context
    sc.run_as_user.value = 1234
    sc.run_as_group.value = 5678
    sc.supplemental_groups.extend([100, 200])
    code, out = run_once(d, pod, config)
    assert code == 0, out
    first = out.splitlines()[0]
    assert first.startswith("uid=1234 gid=5678 groups="), out
    groups = {g.split("(")[0] for g in first.split("groups=")[1].split(",")}
    assert {"100", "200"} <= groups, out
    fields = dict(line.split(":", 1) for line in out.splitlines()[1:])
    assert fields["Uid"].split() == ["1234"] * 4
    assert fields["Gid"].split() == ["5678"] * 4
    assert {"100", "200"} <= set(fields["Groups"].split()), out
    remove_pod(d, pod)


# ---- 4. host-path mounts and propagation ---------------------------------------------

def host_mount(host_path, container_path, readonly=False,
               propagation=api_pb2.PROPAGATION_PRIVATE) -> api_pb2.Mount:
    return api_pb2.Mount(host_path=str(host_path), container_path=container_path,
                         readonly=readonly, propagation=propagation)


def test_host_path_read_only_and_read_write(sdaemon, handler, tmp_path):
    d = sdaemon
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "given").write_text("from-host\n")
    pod = start_pod(d, handler)
    config = shell(d, "cat /mnt/ro/given; touch /mnt/ro/new 2>&1; echo ro=$?;"
                      " echo from-container > /mnt/rw/made && echo rw=ok")
    config.mounts.extend([host_mount(ro, "/mnt/ro", readonly=True),
                          host_mount(rw, "/mnt/rw")])
    code, out = run_once(d, pod, config)
    assert code == 0, out
    assert "from-host" in out
    assert "Read-only file system" in out and "ro=1" in out, out
    assert "rw=ok" in out, out
    assert not (ro / "new").exists()
    assert (rw / "made").read_text() == "from-container\n"
    remove_pod(d, pod)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def test_recursive_read_only_mount_covers_submounts(sdaemon, handler, tmp_path):
    d = sdaemon
    top = tmp_path / "rro"
    (top / "sub").mkdir(parents=True)
    _run("mount", "-t", "tmpfs", "crn-rro", str(top / "sub"))
    try:
        pod = start_pod(d, handler)
        config = shell(d, "touch /mnt/r/sub/x 2>&1; echo sub=$?")
        mount = host_mount(top, "/mnt/r", readonly=True)
        mount.recursive_read_only = True
        config.mounts.append(mount)
        code, out = run_once(d, pod, config)
        remove_pod(d, pod)
    finally:
        _run("umount", str(top / "sub"))
    assert "Read-only file system" in out and "sub=1" in out, out
    assert not (top / "sub" / "x").exists()


def _is_mountpoint(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def _unmount_all(path: Path) -> None:
    """Every mount stacked at `path` (ours only: it lies in the test's tmp)."""
    for _ in range(10):
        if not _is_mountpoint(path):
            return
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextmanager
def shared_host_dir(tmp_path: Path):
    """A directory of ours made a shared mount (a bind onto itself), with an
    empty `sub` below it where mounts appear; every mount made here goes at
    the end, so nothing of the host's is ever touched."""
    top = tmp_path / "shared"
    (top / "sub").mkdir(parents=True)
    _run("mount", "--bind", str(top), str(top))
    try:
        _run("mount", "--make-private", str(top))
        _run("mount", "--make-shared", str(top))
        yield top
    finally:
        _unmount_all(top / "sub")
        _unmount_all(top)


PROPAGATION_CASES = [
    pytest.param(api_pb2.PROPAGATION_PRIVATE, False, id="private"),
    pytest.param(api_pb2.PROPAGATION_HOST_TO_CONTAINER, True, id="host-to-container"),
]


@pytest.mark.parametrize("propagation,visible", PROPAGATION_CASES)
def test_host_mount_made_later_propagates_only_host_to_container(
        sdaemon, handler, tmp_path, propagation, visible):
    d = sdaemon
    with shared_host_dir(tmp_path) as top:
        pod = start_pod(d, handler)
        config = container_config(d, name="prop")
        config.mounts.append(host_mount(top, "/mnt/h", propagation=propagation))
        cid = start_running(d, pod, config)
        try:
            _run("mount", "-t", "tmpfs", "-o", "size=1m", "crn-prop", str(top / "sub"))
            (top / "sub" / "marker").write_text("late-mount\n")
            code, out = exec_sync(d, cid, "cat /mnt/h/sub/marker 2>&1;"
                                           " grep -c crn-prop /proc/self/mountinfo")
        finally:
            remove_pod(d, pod)
    if visible:
        assert code == 0 and out.startswith("late-mount\n"), out
    else:
        assert code != 0 and "late-mount" not in out, out
        assert out.splitlines()[-1] == "0", out


def test_bidirectional_mount_reaches_the_host(sdaemon, handler, tmp_path):
    d = sdaemon
    with shared_host_dir(tmp_path) as top:
        pod = start_pod(d, handler)
        config = shell(d, "mount -t tmpfs crn-bidi /mnt/h/sub && echo up > /mnt/h/sub/m"
                          " && sleep 1000", name="bidi")
        # Mounting needs CAP_SYS_ADMIN (RuntimeDefault seccomp then allows mount).
        config.linux.security_context.capabilities.add_capabilities.append("SYS_ADMIN")
        config.mounts.append(host_mount(top, "/mnt/h",
                                        propagation=api_pb2.PROPAGATION_BIDIRECTIONAL))
        try:
            cid = start_running(d, pod, config)
            code, out = exec_sync(d, cid, "cat /mnt/h/sub/m")
            assert (code, out) == (0, "up\n")
            seen = (top / "sub" / "m").read_text() if (top / "sub" / "m").exists() else ""
        finally:
            remove_pod(d, pod)
    assert seen == "up\n", "the container's mount did not propagate to the host"


# ---- 5. capabilities ------------------------------------------------------------------

CAPS_CASES = [
    pytest.param((), (), DEFAULT_CAPS, id="default"),
    pytest.param(("NET_ADMIN",), (), DEFAULT_CAPS | {"CAP_NET_ADMIN"}, id="add-net-admin"),
    pytest.param((), ("CHOWN",), DEFAULT_CAPS - {"CAP_CHOWN"}, id="drop-chown"),
    pytest.param(("NET_ADMIN",), ("CHOWN",), DEFAULT_CAPS - {"CAP_CHOWN"} | {"CAP_NET_ADMIN"},
                 id="add-and-drop"),
    pytest.param((), ("ALL",), set(), id="drop-all"),
]


@pytest.mark.parametrize("add,drop,expected", CAPS_CASES)
def test_capabilities(sdaemon, handler, add, drop, expected):
    d = sdaemon
    pod = start_pod(d, handler)
    code, out = run_once(d, pod, caps_config(d, add, drop))
    assert code == 0, out
    fields = status_fields(out)
    assert cap_names(fields["CapEff"]) == expected, out
    assert cap_names(fields["CapBnd"]) == expected, out
    assert cap_names(fields["CapPrm"]) == expected, out
    assert int(fields["CapInh"], 16) == 0, out
    bits = {name: CAPABILITIES[name] for name in ("CAP_CHOWN", "CAP_NET_ADMIN")}
    eff = int(fields["CapEff"], 16)
    assert bool(eff >> bits["CAP_CHOWN"] & 1) == ("CAP_CHOWN" in expected)
    assert bool(eff >> bits["CAP_NET_ADMIN"] & 1) == ("CAP_NET_ADMIN" in expected)
    remove_pod(d, pod)


# ---- 6. privileged ---------------------------------------------------------------------

def own_bounding_set() -> int:
    return int(status_fields(Path("/proc/self/status").read_text())["CapBnd"], 16)


def test_privileged_has_every_capability_and_no_seccomp(sdaemon, handler):
    d = sdaemon
    pod = start_pod(d, handler, privileged=True)
    config = shell(d, STATUS_FIELDS, name="priv")
    config.linux.security_context.privileged = True
    code, out = run_once(d, pod, config)
    assert code == 0, out
    fields = status_fields(out)
    # Every capability the kernel knows that the daemon (our child) may hold:
    # a runtime cannot grant more than its own bounding set.
    every = own_bounding_set() & ((1 << (last_cap() + 1)) - 1)
    assert int(fields["CapEff"], 16) == every, out
    assert int(fields["CapBnd"], 16) == every, out
    assert fields["Seccomp"] == "0", out
    remove_pod(d, pod)


# ---- 7. CDI ----------------------------------------------------------------------------

@pytest.fixture
def cdi_spec():
    """A CDI spec in /var/run/cdi (the daemon reads the fixed CDI dirs, with
    no config knob) under a name of our own; removed afterwards, with the
    directory when we made it."""
    made_dir = not CDI_DIR.exists()
    CDI_DIR.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    kind = f"crn-test-{tag}.example/class"
    path = CDI_DIR / f"crio-native-test-{tag}.json"
    path.write_text(json.dumps({
        "cdiVersion": "0.6.0", "kind": kind,
        "devices": [{"name": "dev", "containerEdits": {
            "deviceNodes": [{"path": "/dev/crn-test-null", "type": "c",
                             "major": 1, "minor": 3}],
            "env": ["CRN_CDI_DEVICE=dev"]}}],
        "containerEdits": {"env": ["CRN_CDI_SPEC=common"]}}))
    try:
        yield kind
    finally:
        path.unlink(missing_ok=True)
        if made_dir:
            try:
                CDI_DIR.rmdir()
            except OSError:
                pass  # another spec appeared meanwhile: not ours to remove


def test_cdi_device_injects_node_and_env(sdaemon, handler, cdi_spec):
    d = sdaemon
    pod = start_pod(d, handler)
    config = shell(d, "echo dev=$CRN_CDI_DEVICE spec=$CRN_CDI_SPEC;"
                      " stat -c '%F %t %T' /dev/crn-test-null;"
                      " cat /dev/crn-test-null && echo readable")
    config.CDI_devices.add(name=f"{cdi_spec}=dev")
    code, out = run_once(d, pod, config)
    assert code == 0, out
    assert "dev=dev spec=common" in out, out
    assert "character special file 1 3" in out, out
    assert "readable" in out, out
    remove_pod(d, pod)


def test_unknown_cdi_device_is_invalid_argument(sdaemon, handler, cdi_spec):
    d = sdaemon
    pod = start_pod(d, handler)
    config = shell(d, "true")
    config.CDI_devices.add(name=f"{cdi_spec}=missing")
    code, msg = rpc_code(lambda: create(d, pod, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
    assert f"{cdi_spec}=missing" in msg and "CDI_devices[0]" in msg, msg
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    remove_pod(d, pod)


# ---- 8. the pod's hostname, hosts and resolv.conf ------------------------------------------

def test_hostname_hosts_and_resolv_conf_come_from_the_pod(sdaemon, handler):
    d = sdaemon
    dns = api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["ns.svc.example.test"],
                            options=["ndots:5"])
    pod = start_pod(d, handler, name="secpod", host_network=False, dns=dns)
    ip = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod)).status.network.ip
    code, out = run_once(d, pod, shell(
        d, "hostname; echo ---; cat /etc/hostname; echo ---; cat /etc/hosts; echo ---;"
           " cat /etc/resolv.conf"))
    assert code == 0, out
    name, etc_hostname, hosts, resolv = out.split("---\n")
    assert name == "secpod\n" and etc_hostname == "secpod\n", out
    assert "127.0.0.1\tlocalhost" in hosts.splitlines(), out
    if ip:
        assert f"{ip}\tsecpod" in hosts.splitlines(), out
    assert resolv == "nameserver 10.96.0.10\nsearch ns.svc.example.test\noptions ndots:5\n"
    assert os.uname().nodename != "secpod"
    remove_pod(d, pod)
