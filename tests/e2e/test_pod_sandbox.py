"""Pod sandboxes over real gRPC with the real CNI plugins: namespaces pinned
without a pause process, IPs on a bridge, pod files, /dev/shm, teardown."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e import cni

pytestmark = pytest.mark.root


@pytest.fixture
def net_daemon(daemon_factory, tmp_path):
    """A daemon whose CNI dir holds the bridge network; the bridge goes at teardown."""
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    d.ipam_dir = tmp_path / "ipam"
    cni.write_network(d.network_dir, d.ipam_dir)
    d.start()
    yield d
    d.stop()
    cni.delete_bridge()


def pod_config(name="web", uid="uid-1", attempt=0, **kw) -> api_pb2.PodSandboxConfig:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=uid,
                                            attempt=attempt),
        hostname=kw.pop("hostname", name),
        labels=kw.pop("labels", {"app": name}),
        annotations=kw.pop("annotations", {"note": "kept"}),
        log_directory=kw.pop("log_directory", "/var/log/pods/x"),
    )
    config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    for key, value in kw.items():
        setattr(config, key, value) if not isinstance(value, api_pb2.DNSConfig) \
            else config.dns_config.CopyFrom(value)
    return config


def run_pod(d, config=None, handler="") -> str:
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config or pod_config(), runtime_handler=handler), timeout=60).pod_sandbox_id


def status(d, pod_id, verbose=False):
    return d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id, verbose=verbose))


def pins_of(d, pod_id) -> dict[str, str]:
    return json.loads(status(d, pod_id, verbose=True).info["info"])["pins"]


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def remove(d, pod_id):
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def test_pod_gets_namespaces_an_ip_and_its_files(net_daemon):
    d = net_daemon
    dns = api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"],
                            options=["ndots:5"])
    pod_id = run_pod(d, pod_config(dns_config=dns))
    st = status(d, pod_id).status
    assert st.state == api_pb2.SANDBOX_READY
    assert st.metadata.name == "web" and st.metadata.uid == "uid-1"
    assert st.labels == {"app": "web"} and st.annotations == {"note": "kept"}
    assert st.network.ip.startswith(cni.SUBNET_PREFIX + ".")
    assert st.linux.namespaces.options.pid == api_pb2.CONTAINER
    assert st.runtime_handler == "builtin"

    pins = pins_of(d, pod_id)
    assert set(pins) == {"net", "ipc", "uts"}
    for kind, pin in pins.items():
        assert os.stat(pin).st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino
    addrs = cni.in_netns(pins["net"], "ip", "-o", "-4", "addr").stdout
    assert f"eth0    inet {st.network.ip}/24" in addrs
    assert "lo    inet 127.0.0.1/8" in addrs
    hostname = subprocess.run(["nsenter", f"--uts={pins['uts']}", "hostname"],
                              capture_output=True, text=True).stdout.strip()
    assert hostname == "web"

    info = json.loads(status(d, pod_id, verbose=True).info["info"])
    pod_dir = Path(info["directory"])
    assert (pod_dir / "hostname").read_text() == "web\n"
    assert (pod_dir / "resolv.conf").read_text() == (
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\n")
    assert f"{st.network.ip}\tweb" in (pod_dir / "hosts").read_text()
    with open("/proc/self/mountinfo") as f:
        shm = [line for line in f if line.split()[4] == info["shm"]]
    assert shm and "tmpfs" in shm[0] and "size=65536k" in shm[0]

    remove(d, pod_id)
    assert not any(os.path.exists(p) for p in pins.values())
    assert not pod_dir.exists()
    assert mounts_under(pod_dir) == []
    assert cni.reserved_ips(d.ipam_dir) == []


def test_two_pods_reach_each_other(net_daemon):
    d = net_daemon
    a = run_pod(d, pod_config("a", uid="ua"))
    b = run_pod(d, pod_config("b", uid="ub"))
    ip_b = status(d, b).status.network.ip
    assert ip_b != status(d, a).status.network.ip
    ping = cni.in_netns(pins_of(d, a)["net"], "/bin/busybox", "ping", "-c", "1", "-W", "5", ip_b)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    remove(d, a)
    remove(d, b)


def test_stop_is_idempotent_and_keeps_the_record(net_daemon):
    d = net_daemon
    pod_id = run_pod(d)
    assert len(cni.reserved_ips(d.ipam_dir)) == 1
    for _ in range(2):
        d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    st = status(d, pod_id).status
    assert st.state == api_pb2.SANDBOX_NOTREADY and st.network.ip == ""
    assert cni.reserved_ips(d.ipam_dir) == []
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    with pytest.raises(grpc.RpcError) as info:
        status(d, pod_id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_ids(net_daemon):
    d = net_daemon
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))
    # the CRI: stopping an unknown container succeeds too (removed already)
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id="f" * 64, timeout=5))
    with pytest.raises(grpc.RpcError) as info:
        status(d, "f" * 64)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "f" * 64 in info.value.details()


def test_remove_of_a_running_pod_stops_it_first(net_daemon):
    d = net_daemon
    pod_id = run_pod(d)
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert cni.reserved_ips(d.ipam_dir) == []
    assert d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == []


def test_list_filters(net_daemon):
    d = net_daemon
    a = run_pod(d, pod_config("a", uid="ua", labels={"tier": "front"}))
    b = run_pod(d, pod_config("b", uid="ub", labels={"tier": "back"}))
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=b))

    def ids(**flt):
        request = api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(**flt))
        return {p.id for p in d.runtime.ListPodSandbox(request).items}

    assert ids() == {a, b}
    assert ids(id=a[:10]) == {a}
    assert ids(state=api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)) == {a}
    assert ids(state=api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_NOTREADY)) == {b}
    assert ids(label_selector={"tier": "back"}) == {b}
    assert ids(label_selector={"tier": "back", "x": "y"}) == set()
    remove(d, a)
    remove(d, b)


def test_retried_run_returns_the_same_pod(net_daemon):
    d = net_daemon
    first = run_pod(d)
    again = run_pod(d)
    assert again == first
    other_attempt = run_pod(d, pod_config(attempt=1))
    assert other_attempt != first
    remove(d, first)
    remove(d, other_attempt)


def test_concurrent_runs_of_one_pod_make_one_sandbox(net_daemon):
    d = net_daemon
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_pod(d))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert len(cni.reserved_ips(d.ipam_dir)) == 1
    remove(d, results[0])


def test_host_network_pod_skips_cni(net_daemon):
    d = net_daemon
    config = pod_config("hostnet", hostname="")
    config.linux.security_context.namespace_options.network = api_pb2.NODE
    config.linux.security_context.namespace_options.ipc = api_pb2.NODE
    pod_id = run_pod(d, config)
    st = status(d, pod_id).status
    assert st.network.ip == ""
    assert st.linux.namespaces.options.network == api_pb2.NODE
    info = json.loads(status(d, pod_id, verbose=True).info["info"])
    assert info["pins"] == {} and info["shm"] == ""
    assert (Path(info["directory"]) / "hostname").read_text() == os.uname().nodename + "\n"
    assert cni.reserved_ips(d.ipam_dir) == []
    remove(d, pod_id)


def test_namespaced_sysctls_apply_inside_the_pod(net_daemon):
    d = net_daemon
    config = pod_config()
    config.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "80"
    config.linux.sysctls["kernel.shmmni"] = "1234"
    pod_id = run_pod(d, config)
    pins = pins_of(d, pod_id)
    inside = cni.in_netns(pins["net"], "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert inside.stdout.strip() == "80"
    ipc = subprocess.run(["nsenter", f"--ipc={pins['ipc']}", "cat", "/proc/sys/kernel/shmmni"],
                         capture_output=True, text=True)
    assert ipc.stdout.strip() == "1234"
    assert Path("/proc/sys/kernel/shmmni").read_text().strip() != "1234"
    remove(d, pod_id)


def _bad_configs():
    no_meta = api_pb2.PodSandboxConfig()
    bad_dns = pod_config(dns_config=api_pb2.DNSConfig(servers=["not-an-ip"]))
    bad_opt = pod_config(dns_config=api_pb2.DNSConfig(options=["ndots 5"]))
    node_sysctl = pod_config()
    node_sysctl.linux.sysctls["kernel.panic"] = "1"
    hostnet_sysctl = pod_config()
    hostnet_sysctl.linux.security_context.namespace_options.network = api_pb2.NODE
    hostnet_sysctl.linux.sysctls["net.ipv4.ip_forward"] = "1"
    shm = pod_config(annotations={"io.kubernetes.cri-o.ShmSize": "100Ti"})
    return [
        (no_meta, "", "config.metadata"),
        (bad_dns, "", "config.dns_config.servers[0]"),
        (bad_opt, "", "config.dns_config.options[0]"),
        (node_sysctl, "", "kernel.panic"),
        (hostnet_sysctl, "", "net.ipv4.ip_forward"),
        (shm, "", "io.kubernetes.cri-o.ShmSize"),
        (pod_config(annotations={"kubernetes.io/ingress-bandwidth": "fast"}), "",
         "kubernetes.io/ingress-bandwidth"),
        (pod_config(), "no-such-handler", "runtime_handler"),
    ]


@pytest.mark.parametrize("config, handler, field", _bad_configs())
def test_bad_requests_are_invalid_argument_naming_the_field(net_daemon, config, handler, field):
    d = net_daemon
    with pytest.raises(grpc.RpcError) as info:
        run_pod(d, config, handler)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()
    assert d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == []
    assert not any((d.base / "run" / "ns").glob("*/*"))


FAILING_PLUGIN = """#!/bin/sh
# A CNI plugin that refuses ADD and accepts everything else.
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":11,"msg":"no capacity in test plugin"}'; exit 1;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}';;
esac
exit 0
"""

SLOW_PLUGIN = """#!/bin/sh
# Passes the previous result through, after announcing itself and sleeping on ADD.
case "$CNI_COMMAND" in
ADD) sleep 60 & echo "$$ $!" > "{marker}"; wait $!
     python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))';;
esac
exit 0
"""


def write_plugin(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)


def test_failing_plugin_rolls_everything_back(daemon_factory, tmp_path):
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "crn-fail", FAILING_PLUGIN)
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-plugin-dir", str(plugins))
    ipam = tmp_path / "ipam"
    cni.write_network(d.network_dir, ipam, extra_plugins=[{"type": "crn-fail"}])
    d.start()
    try:
        with pytest.raises(grpc.RpcError) as info:
            run_pod(d)
        assert "no capacity in test plugin" in info.value.details()
        assert cni.reserved_ips(ipam) == [], "the IP the bridge plugin took must be released"
        assert d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == []
        assert not any((d.base / "run" / "ns").glob("*/*"))
        assert not any((d.base / "run" / "pods").glob("*"))
        assert mounts_under(d.base) == []
        assert list((d.base / "root" / "sandboxes").glob("*.json")) == []
    finally:
        d.stop()
        cni.delete_bridge()


def test_pods_survive_a_daemon_restart(net_daemon):
    d = net_daemon
    pod_id = run_pod(d)
    ip = status(d, pod_id).status.network.ip
    d.stop(signal.SIGKILL)
    d.start()
    st = status(d, pod_id).status
    assert st.state == api_pb2.SANDBOX_READY and st.network.ip == ip
    remove(d, pod_id)
    assert cni.reserved_ips(d.ipam_dir) == []


def test_crash_during_cni_add_is_rolled_back_at_restart(daemon_factory, tmp_path):
    plugins = tmp_path / "plugins"
    marker = tmp_path / "add-started"
    write_plugin(plugins, "crn-slow", SLOW_PLUGIN.replace("{marker}", str(marker)))
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-plugin-dir", str(plugins))
    ipam = tmp_path / "ipam"
    cni.write_network(d.network_dir, ipam, extra_plugins=[{"type": "crn-slow"}])
    d.start()
    try:
        caller = threading.Thread(target=lambda: pytest.raises(grpc.RpcError, run_pod, d))
        caller.start()
        deadline = time.monotonic() + 30
        while not marker.exists() or not marker.read_text().strip():
            assert time.monotonic() < deadline, "the slow plugin never ran"
            time.sleep(0.05)
        assert len(cni.reserved_ips(ipam)) == 1
        d.stop(signal.SIGKILL)
        caller.join()
        for pid in marker.read_text().split():  # the orphaned plugin and its sleep
            os.kill(int(pid), signal.SIGKILL)
        d.start()
        assert d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == []
        assert cni.reserved_ips(ipam) == [], "restart must release the IP (CNI DEL)"
        assert not any((d.base / "run" / "ns").glob("*/*"))
        assert mounts_under(d.base) == []
        # The same pod can be created afresh.
        marker.unlink()
        cni.write_network(d.network_dir, ipam)
        pod_id = run_pod(d)
        remove(d, pod_id)
    finally:
        d.stop()
        cni.delete_bridge()


def test_many_cycles_leave_nothing_behind(net_daemon):
    d = net_daemon
    fds_before = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
    threads_before = len(os.listdir(f"/proc/{d.proc.pid}/task"))
    for i in range(100):
        pod_id = run_pod(d, pod_config(f"cycle{i}", uid=f"u{i}"))
        remove(d, pod_id)
    assert cni.reserved_ips(d.ipam_dir) == []
    assert not any((d.base / "run" / "ns").glob("*/*"))
    assert mounts_under(d.base) == []
    assert len(os.listdir(f"/proc/{d.proc.pid}/fd")) <= fds_before
    assert len(os.listdir(f"/proc/{d.proc.pid}/task")) <= threads_before + 2
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "veth" not in links


def test_host_port_reaches_the_pod_on_loopback(net_daemon, tmp_path):
    d = net_daemon
    config = pod_config("httpd")
    config.port_mappings.append(api_pb2.PortMapping(
        protocol=api_pb2.TCP, container_port=8080, host_port=18080, host_ip="127.0.0.1"))
    pod_id = run_pod(d, config)
    pin = pins_of(d, pod_id)["net"]
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the pod\n")
    server = subprocess.Popen(["nsenter", f"--net={pin}", "/bin/busybox", "httpd", "-f",
                               "-p", "8080", "-h", str(www)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:18080/", timeout=3) as reply:
                    body = reply.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert body == b"hello from the pod\n"
    finally:
        server.kill()
        server.wait()
        remove(d, pod_id)
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert "18080" not in nat, "portmap rules must go with the pod"


def test_bandwidth_annotations_shape_the_pod(daemon_factory, tmp_path):
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    ipam = tmp_path / "ipam"
    cni.write_network(d.network_dir, ipam, extra_plugins=[
        {"type": "bandwidth", "capabilities": {"bandwidth": True}}])
    d.start()
    try:
        pod_id = run_pod(d, pod_config(annotations={"kubernetes.io/ingress-bandwidth": "1M"}))
        qdiscs = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
        assert "tbf" in qdiscs and "rate 1Mbit" in qdiscs, qdiscs
        remove(d, pod_id)
        qdiscs = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
        assert "rate 1Mbit" not in qdiscs
    finally:
        d.stop()
        cni.delete_bridge()


def processes_in_pid_namespace(pin: str) -> list[tuple[int, str, str]]:
    """(host pid, comm, pid inside) of every process in the namespace pinned at `pin`."""
    inode = os.stat(pin).st_ino
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != inode:
                continue
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        nspid = next(line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:"))
        found.append((int(entry), comm, nspid))
    return found


def pod_pid_config(name="shared-pid"):
    config = pod_config(name)
    config.linux.security_context.namespace_options.pid = api_pb2.POD
    return config


def test_pod_pid_namespace_runs_an_infra_process(net_daemon):
    d = net_daemon
    pod_id = run_pod(d, pod_pid_config())
    pins = pins_of(d, pod_id)
    assert set(pins) == {"net", "ipc", "uts", "pid"}
    procs = processes_in_pid_namespace(pins["pid"])
    assert [(comm, nspid) for _, comm, nspid in procs] == [("pause", "1")]
    infra_pid = procs[0][0]
    for kind in ("net", "ipc", "uts"):
        assert os.stat(f"/proc/{infra_pid}/ns/{kind}").st_ino == os.stat(pins[kind]).st_ino
    assert status(d, pod_id).status.linux.namespaces.options.pid == api_pb2.POD

    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert not Path(f"/proc/{infra_pid}").exists() or \
        Path(f"/proc/{infra_pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    assert not os.path.exists(pins["pid"])
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert not any(os.path.exists(p) for p in pins.values())


def test_infra_process_outlives_a_daemon_crash(net_daemon):
    d = net_daemon
    pod_id = run_pod(d, pod_pid_config())
    pin = pins_of(d, pod_id)["pid"]
    (infra_pid, _, _), = processes_in_pid_namespace(pin)
    d.stop(signal.SIGKILL)
    assert Path(f"/proc/{infra_pid}").exists()
    d.start()
    assert status(d, pod_id).status.state == api_pb2.SANDBOX_READY
    remove(d, pod_id)
    assert processes_in_pid_namespace_gone(infra_pid)
    assert not os.path.exists(pin)


def processes_in_pid_namespace_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # dead, waiting for its (reparented) parent to reap it
