"""The kubelet, for the e2e scenarios that play one (tests/e2e/test_kubelet_*.py).

No kubelet can be installed here, so this module sends what one sends: the
CRI messages are built as Kubernetes' pkg/kubelet/kuberuntime builds them
(kuberuntime_sandbox.go generatePodSandboxConfig and its Linux half,
kuberuntime_container.go generateContainerConfig, kuberuntime_container_linux.go
generateLinuxContainerResources and swap handling, labels.go for the
io.kubernetes.* labels and annotations, qos/policy.go for oom_score_adj), in
the order it sends them.  The pod cgroups are made first, as the kubelet's
cgroupfs driver makes them (/kubepods/<qos>/pod<uid>, /kubepods/pod<uid>
for Guaranteed; in every v1 hierarchy on a v1/hybrid host, in the v2 one
on a pure v2 host), and removed by the kubelet after the pod.  Written from
the Go sources' behaviour, not their code."""
from __future__ import annotations

import dataclasses
import datetime
import gzip
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.linux import capabilities, cgroups
from crio_native.linux.cgroups import hugetlb
from tests.e2e.daemon import Daemon
from tests.fixtures.oci_builder import ImageBuilder, Pusher

# k8s.io/kubelet/pkg/types/labels.go
POD_NAME, POD_NAMESPACE = "io.kubernetes.pod.name", "io.kubernetes.pod.namespace"
POD_UID, CONTAINER_NAME = "io.kubernetes.pod.uid", "io.kubernetes.container.name"
# pkg/kubelet/kuberuntime/labels.go
HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_POLICY = "io.kubernetes.container.terminationMessagePolicy"
POD_GRACE = "io.kubernetes.pod.terminationGracePeriod"
PORTS = "io.kubernetes.container.ports"

# pkg/kubelet/qos/policy.go
GUARANTEED_OOM_SCORE_ADJ, BESTEFFORT_OOM_SCORE_ADJ = -997, 1000
# pkg/kubelet/cm/helpers_linux.go
MIN_SHARES, MAX_SHARES, SHARES_PER_CPU, MILLI_PER_CPU = 2, 262144, 1024, 1000
QUOTA_PERIOD, MIN_QUOTA_PERIOD = 100000, 1000
# pkg/securitycontext: the default ProcMount's paths
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# pkg/kubelet/logs/container_log_manager.go
ROTATED_STAMP = "%Y%m%d-%H%M%S"
CLUSTER_DNS, CLUSTER_DOMAIN = "10.96.0.10", "cluster.local"
# the kubelet's default runtimeRequestTimeout, added to an ExecSync's own
RUNTIME_REQUEST_TIMEOUT = 120

BRIDGE, SUBNET = "crnkube0", "10.231.13.0/24"
MIB = 1 << 20


# ---- the pod as the API server hands it over -------------------------------

@dataclass
class Probe:
    """An exec probe: ExecSync every `period` s, failing past `timeout` s."""
    command: list[str]
    period: int = 1
    timeout: int = 1


@dataclass
class Container:
    name: str
    command: list[str]
    cpu_request: int | None = None       # millicores
    cpu_limit: int | None = None
    memory_request: int | None = None    # bytes
    memory_limit: int | None = None
    ports: list[dict] = field(default_factory=list)   # v1.ContainerPort as JSON
    liveness: Probe | None = None
    readiness: Probe | None = None
    volumes: dict[str, str] = field(default_factory=dict)   # emptyDir name -> mount path


@dataclass
class Pod:
    name: str
    containers: list[Container]
    init_containers: list[Container] = field(default_factory=list)
    namespace: str = "default"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    grace_period: int = 30
    # what RunPodSandbox was sent: CreateContainer sends it again
    sandbox: api_pb2.PodSandboxConfig | None = None

    @property
    def all_containers(self) -> list[Container]:
        return [*self.init_containers, *self.containers]

    @property
    def qos(self) -> str:
        """v1qos.GetPodQOS: Guaranteed when every container limits cpu and
        memory with requests equal to limits, BestEffort when none asks
        anything, Burstable otherwise."""
        cs = self.all_containers
        if all(c.cpu_request is None and c.cpu_limit is None and c.memory_request is None
               and c.memory_limit is None for c in cs):
            return "besteffort"
        if all(c.cpu_limit and c.memory_limit and c.cpu_request in (None, c.cpu_limit)
               and c.memory_request in (None, c.memory_limit) for c in cs):
            return "guaranteed"
        return "burstable"

    @property
    def cgroup_parent(self) -> str:
        """The cgroupfs driver's pod cgroup (pkg/kubelet/cm/pod_container_manager_linux.go)."""
        if self.qos == "guaranteed":
            return f"/kubepods/pod{self.uid}"
        return f"/kubepods/{self.qos}/pod{self.uid}"

    @property
    def log_dir_name(self) -> str:
        return f"{self.namespace}_{self.name}_{self.uid}"   # BuildPodLogsDirectory

    def requests(self) -> tuple[int, int]:
        """(cpu millicores, memory) of the pod: the sum of the app
        containers' requests, or an init container's if larger
        (resourcehelper.PodRequests; a limit stands for a missing request)."""
        def req(c: Container) -> tuple[int, int]:
            return (c.cpu_request if c.cpu_request is not None else c.cpu_limit or 0,
                    c.memory_request if c.memory_request is not None else c.memory_limit or 0)
        cpu = sum(req(c)[0] for c in self.containers)
        mem = sum(req(c)[1] for c in self.containers)
        for c in self.init_containers:
            cpu, mem = max(cpu, req(c)[0]), max(mem, req(c)[1])
        return cpu, mem

    def limits(self) -> tuple[int, int]:
        cpu = sum(c.cpu_limit or 0 for c in self.containers)
        mem = sum(c.memory_limit or 0 for c in self.containers)
        for c in self.init_containers:
            cpu, mem = max(cpu, c.cpu_limit or 0), max(mem, c.memory_limit or 0)
        return cpu, mem


# ---- resources (cm/helpers_linux.go, kuberuntime_container_linux.go) --------

def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return min(max(milli * SHARES_PER_CPU // MILLI_PER_CPU, MIN_SHARES), MAX_SHARES)


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD) -> int:
    if milli == 0:
        return 0
    return max(milli * period // MILLI_PER_CPU, MIN_QUOTA_PERIOD)


def pure_v2() -> bool:
    return cgroups.pure_v2(cgroups.host_hierarchies())


def can_lower_oom_score() -> bool:
    """CAP_SYS_RESOURCE, without which no runtime can give a Guaranteed
    pod's containers the kubelet's -997 (runc fails the create; the
    built-in runtime keeps its own score, as containerd's
    restrict_oom_score_adj does)."""
    return bool(capabilities.effective_caps() & (1 << capabilities.CAP_SYS_RESOURCE))


def skip_guaranteed_on_runc(handler: str) -> None:
    if handler == "runc" and not can_lower_oom_score():
        pytest.skip("runc cannot set a Guaranteed container's oom_score_adj -997 without "
                    "CAP_SYS_RESOURCE, which this host's bounding set lacks")


def v1_swap_accounting() -> bool:
    """swapControllerAvailable on a v1/hybrid host: memsw files exist."""
    return Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()


def calculate_linux_resources(cpu_request: int | None, cpu_limit: int | None,
                              memory_limit: int | None) -> api_pb2.LinuxContainerResources:
    """calculateLinuxResources: shares from the request (the limit when no
    request is given), a CFS quota from the limit over the default period
    (cpuCFSQuota is on by default), and on cgroup v2 a group OOM kill
    (singleProcessOOMKill defaults to false there)."""
    r = api_pb2.LinuxContainerResources()
    if cpu_request is None and cpu_limit:
        r.cpu_shares = milli_cpu_to_shares(cpu_limit)
    else:
        r.cpu_shares = milli_cpu_to_shares(cpu_request or 0)
    if memory_limit:
        r.memory_limit_in_bytes = memory_limit
    r.cpu_quota = milli_cpu_to_quota(cpu_limit or 0)
    r.cpu_period = QUOTA_PERIOD
    if pure_v2():
        r.unified["memory.oom.group"] = "1"
    return r


def memory_capacity() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def oom_score_adj(pod: Pod, c: Container) -> int:
    """qos.GetContainerOOMScoreAdjust."""
    if pod.qos == "guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if pod.qos == "besteffort":
        return BESTEFFORT_OOM_SCORE_ADJ
    adj = 1000 - (1000 * (c.memory_request or 0)) // memory_capacity()
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    return adj - 1 if adj == BESTEFFORT_OOM_SCORE_ADJ else adj


def container_resources(pod: Pod, c: Container) -> api_pb2.LinuxContainerResources:
    """generateLinuxContainerResources: calculateLinuxResources, the OOM score
    adjustment, one hugepage limit (0) per page size the node has, and swap
    as ConfigureNoSwap sets it (memory+swap = the limit on a v1 host with
    swap accounting; memory.swap.max 0 on v2 where the controller exists)."""
    r = calculate_linux_resources(c.cpu_request, c.cpu_limit, c.memory_limit)
    r.oom_score_adj = oom_score_adj(pod, c)
    for size in sorted(hugetlb.host_page_sizes()):
        r.hugepage_limits.add(page_size=size, limit=0)
    if pure_v2():
        own = cgroups.own_cgroups().get("", "/").lstrip("/")
        if (Path("/sys/fs/cgroup") / own / "memory.swap.max").exists():
            r.unified["memory.swap.max"] = "0"
    elif v1_swap_accounting():
        r.memory_swap_limit_in_bytes = r.memory_limit_in_bytes
    return r


# ---- the pod cgroups of the kubelet's cgroupfs driver ----------------------

class KubeletCgroups:
    """The QoS and pod groups a kubelet (cgroupfs driver) makes before
    RunPodSandbox, with the values its pod container manager writes
    (ResourceConfigForPod), and removes after RemovePodSandbox.  Only what
    it made here is removed."""

    # the files its limits go to, v1 and v2
    LIMIT_FILES = ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "memory.limit_in_bytes",
                   "memory.memsw.limit_in_bytes", "cpu.weight", "cpu.max", "memory.max",
                   "memory.swap.max")

    def __init__(self) -> None:
        self.made: list[Path] = []
        self.written: dict[str, dict[str, str]] = {}   # pod uid -> limits() after make()

    @staticmethod
    def hierarchies() -> list[Path]:
        """The mountpoints the driver uses: every v1 hierarchy (named ones
        included) on a v1/hybrid host; the v2 one on a pure v2 host."""
        hs = cgroups.host_hierarchies()
        want = 2 if cgroups.pure_v2(hs) else 1
        return [h.mountpoint for h, _root in hs if h.version == want]

    def dirs(self, path: str) -> list[Path]:
        return [top / path.lstrip("/") for top in self.hierarchies()]

    def make(self, pod: Pod) -> None:
        for top in self.hierarchies():
            parts = pod.cgroup_parent.strip("/").split("/")
            d = top
            for part in parts:
                if (d / "cgroup.subtree_control").exists():
                    self._enable_controllers(d)
                d = d / part
                if not d.exists():
                    d.mkdir()
                    self.made.append(d)
                    self._inherit_cpuset(d)
            self.write_pod_limits(d, pod)
        for qos_dir in self.dirs("/kubepods/besteffort"):
            if qos_dir in self.made:
                self._write_shares(qos_dir, MIN_SHARES)
        self.written[pod.uid] = self.limits(pod)

    def limits(self, pod: Pod) -> dict[str, str]:
        """The pod group's limit files, by path."""
        return {str(d / name): (d / name).read_text() for d in self.pod_dirs(pod)
                for name in self.LIMIT_FILES if (d / name).exists()}

    @staticmethod
    def _enable_controllers(d: Path) -> None:
        """fs2's CreateCgroupPath: every controller offered, down the path."""
        offered = (d / "cgroup.controllers").read_text().split()
        enabled = set((d / "cgroup.subtree_control").read_text().split())
        for c in offered:
            if c not in enabled:
                (d / "cgroup.subtree_control").write_text(f"+{c}")

    @staticmethod
    def _inherit_cpuset(d: Path) -> None:
        for name in ("cpuset.cpus", "cpuset.mems"):
            f = d / name
            if f.exists() and not (d / "cgroup.controllers").exists() and \
                    not f.read_text().strip():
                f.write_text((d.parent / name).read_text())

    @staticmethod
    def _write(d: Path, v1: str, v1_value: int, v2: str, v2_value: str) -> None:
        """A v1 file, or on v2 its counterpart (libcontainer's conversion)."""
        if (d / v1).exists():
            (d / v1).write_text(str(v1_value))
        elif (d / v2).exists():
            (d / v2).write_text(v2_value)

    def _write_shares(self, d: Path, shares: int) -> None:
        self._write(d, "cpu.shares", shares, "cpu.weight",
                    str(1 + ((shares - 2) * 9999) // 262142))

    def _write_quota(self, d: Path, milli: int) -> None:
        quota = milli_cpu_to_quota(milli)
        if (d / "cpu.cfs_period_us").exists():
            (d / "cpu.cfs_period_us").write_text(str(QUOTA_PERIOD))
        self._write(d, "cpu.cfs_quota_us", quota or -1, "cpu.max",
                    f"{quota or 'max'} {QUOTA_PERIOD}")

    def _write_memory(self, d: Path, limit: int) -> None:
        self._write(d, "memory.limit_in_bytes", limit, "memory.max", str(limit))

    def write_pod_limits(self, d: Path, pod: Pod) -> None:
        """ResourceConfigForPod: shares from the requests; for Guaranteed the
        quota and the memory limit; for Burstable those that every container
        declares; BestEffort the minimum shares.  Memory goes to
        memory.limit_in_bytes alone (libcontainer writes memsw only when
        asked, and the kubelet never asks): the pod's memsw stays unlimited."""
        cpu_req, _ = pod.requests()
        cpu_lim, mem_lim = pod.limits()
        if pod.qos == "besteffort":
            self._write_shares(d, MIN_SHARES)
            return
        self._write_shares(d, milli_cpu_to_shares(cpu_req))
        guaranteed, cs = pod.qos == "guaranteed", pod.containers
        if guaranteed or all(c.cpu_limit for c in cs):
            self._write_quota(d, cpu_lim)
        if guaranteed or all(c.memory_limit for c in cs):
            self._write_memory(d, mem_lim)

    def set_pod_memory(self, pod: Pod) -> None:
        """SetPodCgroupConfig(memory): the limit alone, memsw untouched."""
        for d in self.pod_dirs(pod):
            self._write_memory(d, pod.limits()[1])

    def set_pod_cpu(self, pod: Pod, limit: bool) -> None:
        """SetPodCgroupConfig(cpu): the quota (`limit`) or the shares."""
        for d in self.pod_dirs(pod):
            if limit:
                self._write_quota(d, pod.limits()[0])
            else:
                self._write_shares(d, milli_cpu_to_shares(pod.requests()[0]))

    def pod_dirs(self, pod: Pod) -> list[Path]:
        return self.dirs(pod.cgroup_parent)

    def remove(self) -> None:
        cgroups.remove(sorted(self.made, key=lambda p: len(p.parts), reverse=True))
        self.made = []


# ---- the CRI messages ------------------------------------------------------

def sandbox_config(pod: Pod, log_root: Path, attempt: int = 0) -> api_pb2.PodSandboxConfig:
    """generatePodSandboxConfig + generatePodSandboxLinuxConfig +
    applySandboxResources, for a pod on the pod network with ClusterFirst DNS."""
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=pod.name, namespace=pod.namespace,
                                            uid=pod.uid, attempt=attempt),
        hostname=pod.name,
        log_directory=str(log_root / pod.log_dir_name),
        labels={**pod.labels, POD_NAME: pod.name, POD_NAMESPACE: pod.namespace,
                POD_UID: pod.uid},
        annotations={**pod.annotations, "kubernetes.io/config.source": "api",
                     "kubernetes.io/config.seen": datetime.datetime.now(
                         datetime.timezone.utc).isoformat()},
        dns_config=api_pb2.DNSConfig(
            servers=[CLUSTER_DNS],
            searches=[f"{pod.namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}",
                      CLUSTER_DOMAIN],
            options=["ndots:5"]))
    for c in pod.containers:                            # MakePortMappings
        for p in c.ports:
            config.port_mappings.add(
                protocol=getattr(api_pb2, p.get("protocol", "TCP")),
                container_port=p["containerPort"], host_port=p.get("hostPort", 0),
                host_ip=p.get("hostIP", ""))
    linux = config.linux
    linux.cgroup_parent = pod.cgroup_parent
    sc = linux.security_context
    sc.seccomp.profile_type = api_pb2.SecurityProfile.RuntimeDefault
    ns = sc.namespace_options
    ns.network, ns.pid, ns.ipc = api_pb2.POD, api_pb2.CONTAINER, api_pb2.POD
    cpu_req, _ = pod.requests()
    cpu_lim, mem_lim = pod.limits()
    linux.resources.CopyFrom(calculate_linux_resources(cpu_req, cpu_lim, mem_lim))
    linux.overhead.SetInParent()                         # no RuntimeClass overhead
    return config


def container_config(pod: Pod, c: Container, image_ref: str, user_image: str,
                     restart_count: int, host_dir: Path) -> api_pb2.ContainerConfig:
    """generateContainerConfig with its Linux half (generateLinuxContainerConfig
    and determineEffectiveSecurityContext for an image running as root)."""
    hash_hex = format(zlib.crc32(json.dumps(c.command).encode()), "x")
    annotations = {HASH: hash_hex, RESTART_COUNT: str(restart_count),
                   TERMINATION_PATH: "/dev/termination-log",
                   TERMINATION_POLICY: "File", POD_GRACE: str(pod.grace_period)}
    if c.ports:
        annotations[PORTS] = json.dumps(c.ports, separators=(",", ":"))
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=c.name, attempt=restart_count),
        image=api_pb2.ImageSpec(image=image_ref, user_specified_image=user_image),
        command=c.command,
        labels={POD_NAME: pod.name, POD_NAMESPACE: pod.namespace, POD_UID: pod.uid,
                CONTAINER_NAME: c.name},
        annotations=annotations,
        log_path=f"{c.name}/{restart_count}.log")        # buildContainerLogsPath
    config.envs.extend(api_pb2.KeyValue(key=k, value=v.encode()) for k, v in (
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"), ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"), ("KUBERNETES_PORT", "tcp://10.96.0.1:443")))
    # makeMounts: the pod's /etc/hosts and the container's termination log,
    # both files the kubelet made under its pod directory
    pod_dir = host_dir / "pods" / pod.uid
    hosts = pod_dir / "etc-hosts"
    termination = pod_dir / "containers" / c.name / uuid.uuid4().hex[:8]
    termination.parent.mkdir(parents=True, exist_ok=True)
    if not hosts.exists():
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    termination.touch(mode=0o666)
    for name, path in sorted(c.volumes.items()):
        empty_dir = pod_dir / "volumes" / "kubernetes.io~empty-dir" / name
        empty_dir.mkdir(parents=True, exist_ok=True)
        config.mounts.add(container_path=path, host_path=str(empty_dir))
    config.mounts.add(container_path="/etc/hosts", host_path=str(hosts))
    config.mounts.add(container_path="/dev/termination-log", host_path=str(termination))
    linux = config.linux
    linux.resources.CopyFrom(container_resources(pod, c))
    sc = linux.security_context
    sc.namespace_options.network = api_pb2.POD
    sc.namespace_options.pid = api_pb2.CONTAINER
    sc.namespace_options.ipc = api_pb2.POD
    sc.run_as_user.value = 0                             # the image's user: root
    sc.seccomp.profile_type = api_pb2.SecurityProfile.Unconfined   # seccompDefault off
    sc.masked_paths.extend(MASKED_PATHS)
    sc.readonly_paths.extend(READONLY_PATHS)
    return config


# ---- the daemon the kubelet drives -----------------------------------------

def conflist(ipam_dir: Path) -> dict:
    return {"cniVersion": "1.0.0", "name": "crn-kubelet", "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                  "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def skip_if_confined() -> None:
    if os.environ.get("CRIO_NATIVE_CGROUP_ROOT"):
        pytest.skip("this run confines every runtime to $CRIO_NATIVE_CGROUP_ROOT (a populated "
                    "v2 cgroup), where the kubelet's /kubepods cannot be made")


def start_node(tmp: Path, registry_url: str, registry_host: str):
    """A daemon on the bridge network with the busybox image in the registry;
    yields (daemon, user-specified image name).  For module fixtures."""
    d = Daemon(tmp / "daemon", ["--cni-plugin-dir", "/usr/lib/cni"])
    d.network_dir.mkdir(parents=True)
    (d.network_dir / "10-crn-kubelet.conflist").write_text(
        json.dumps(conflist(tmp / "ipam")))
    Pusher(registry_url).push_image("kubelet/busybox", "1", ImageBuilder().busybox().build())
    d.start()
    try:
        yield d, f"{registry_host}/kubelet/busybox:1"
    finally:
        d.stop()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


@dataclass
class Running:
    """A container the kubelet started: its id, spec and attempt."""
    id: str
    spec: Container
    attempt: int


class Kubelet:
    """One test's kubelet on a node daemon: pods it runs, torn down as the
    kubelet does (stop, remove containers, remove the sandbox, remove the
    pod's cgroups and logs) at the end."""

    def __init__(self, d: Daemon, image: str, root: Path, handler: str = ""):
        self.d, self.image, self.handler = d, image, handler
        self.log_root = root / "var" / "log" / "pods"
        self.host_dir = root / "var" / "lib" / "kubelet"
        self.cgroups = KubeletCgroups()
        self.pods: dict[str, Pod] = {}          # sandbox id -> pod
        self.image_ref = ""

    @property
    def runtime(self):
        return self.d.runtime

    def pull(self, config: api_pb2.PodSandboxConfig) -> str:
        if not self.image_ref:
            self.image_ref = self.d.images.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=self.image), sandbox_config=config),
                timeout=60).image_ref
        return self.image_ref

    def run_pod(self, pod: Pod) -> str:
        """SyncPod's first half: the pod cgroup, the log directory, RunPodSandbox."""
        self.cgroups.make(pod)
        config = sandbox_config(pod, self.log_root)
        Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        pod_id = self.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=config, runtime_handler=self.handler), timeout=60).pod_sandbox_id
        self.pods[pod_id] = pod
        pod.sandbox = config
        return pod_id

    def start(self, pod_id: str, c: Container, attempt: int = 0) -> Running:
        """startContainer: pull, mkdir the container's log directory, create, start."""
        pod = self.pods[pod_id]
        sandbox = pod.sandbox
        assert sandbox is not None
        ref = self.pull(sandbox)
        (self.log_root / pod.log_dir_name / c.name).mkdir(parents=True, exist_ok=True)
        config = container_config(pod, c, ref, self.image, attempt, self.host_dir)
        cid = self.runtime.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox),
            timeout=60).container_id
        self.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid),
                                    timeout=60)
        return Running(cid, c, attempt)

    def status(self, cid: str, verbose: bool = False) -> api_pb2.ContainerStatusResponse:
        return self.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=cid, verbose=verbose))

    def wait_exited(self, cid: str, timeout: float = 30.0) -> api_pb2.ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(cid).status
            if st.state == api_pb2.CONTAINER_EXITED:
                return st
            assert time.monotonic() < deadline, f"container {cid} still {st.state}"
            time.sleep(0.05)

    def wait_log(self, cid: str, text: str, timeout: float = 15.0) -> Path:
        path = Path(self.status(cid).status.log_path)
        deadline = time.monotonic() + timeout
        while text not in (path.read_text() if path.exists() else ""):
            assert time.monotonic() < deadline, f"{text!r} never logged in {path}"
            time.sleep(0.05)
        return path

    def stop(self, cid: str, grace: int) -> None:
        """killContainer: StopContainer with the pod's grace period."""
        self.runtime.StopContainer(api_pb2.StopContainerRequest(
            container_id=cid, timeout=grace), timeout=grace + RUNTIME_REQUEST_TIMEOUT)

    def remove_container(self, cid: str) -> None:
        """removeContainer: the log (and its rotated files) first, then RemoveContainer."""
        log = Path(self.status(cid).status.log_path)
        for f in log.parent.glob(f"{log.name}*"):
            f.unlink()
        self.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid),
                                     timeout=60)

    def resize(self, pod_id: str, running: Running, new: Container) -> None:
        """doPodResizeAction for one container: memory, then cpu, each with
        the pod cgroup's limit raised before UpdateContainerResources and
        lowered after it (requests likewise), and the container updated
        with its whole resources (the other resource as it is now)."""
        pod = self.pods[pod_id]
        i = pod.containers.index(running.spec)

        def phase(resource: str, mixed: Container) -> None:
            (cpu_req, _), (cpu_lim, mem_lim) = pod.requests(), pod.limits()
            pod.containers[i] = running.spec = mixed
            (new_cpu_req, _), (new_cpu_lim, new_mem_lim) = pod.requests(), pod.limits()
            cur_lim, new_lim = (mem_lim, new_mem_lim) if resource == "memory" else (
                cpu_lim, new_cpu_lim)
            cur_req, new_req = (0, 0) if resource == "memory" else (cpu_req, new_cpu_req)
            set_limit = (lambda: self.cgroups.set_pod_memory(pod)) if resource == "memory" \
                else (lambda: self.cgroups.set_pod_cpu(pod, True))
            if new_lim > cur_lim:
                set_limit()
            if new_req > cur_req:
                self.cgroups.set_pod_cpu(pod, False)
            self.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
                container_id=running.id, linux=container_resources(pod, mixed)), timeout=60)
            if new_req < cur_req:
                self.cgroups.set_pod_cpu(pod, False)
            if new_lim < cur_lim:
                set_limit()

        old = running.spec
        phase("memory", dataclasses.replace(old, memory_request=new.memory_request,
                                            memory_limit=new.memory_limit))
        phase("cpu", dataclasses.replace(running.spec, cpu_request=new.cpu_request,
                                         cpu_limit=new.cpu_limit))

    def cgroup_dirs(self, cid: str) -> list[str]:
        return json.loads(self.status(cid, verbose=True).info["info"])["cgroupDirs"]

    def kill_pod(self, pod_id: str) -> None:
        """killPodWithSyncResult: stop every running container, then the sandbox."""
        pod = self.pods[pod_id]
        flt = api_pb2.ContainerFilter(pod_sandbox_id=pod_id)
        for c in self.runtime.ListContainers(api_pb2.ListContainersRequest(
                filter=flt)).containers:
            if c.state == api_pb2.CONTAINER_RUNNING:
                self.stop(c.id, pod.grace_period)
        self.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
                                    timeout=60)

    def remove_pod(self, pod_id: str) -> None:
        """The garbage collector: containers, the sandbox, then the pod's
        cgroup (the pod cleanup) and log directory."""
        pod = self.pods.pop(pod_id)
        flt = api_pb2.ContainerFilter(pod_sandbox_id=pod_id)
        for c in self.runtime.ListContainers(api_pb2.ListContainersRequest(
                filter=flt)).containers:
            self.remove_container(c.id)
        self.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                                      timeout=60)
        shutil.rmtree(self.log_root / pod.log_dir_name, ignore_errors=True)

    def teardown(self) -> None:
        try:
            for pod_id in list(self.pods):
                self.kill_pod(pod_id)
                self.remove_pod(pod_id)
        finally:
            self.cgroups.remove()

    # ---- probes (pkg/kubelet/prober: exec probes are ExecSync) -------------

    def exec_probe(self, cid: str, probe: Probe) -> str:
        """One probe run: "success", "failure" (non-zero exit) or "timeout"."""
        try:
            r = self.runtime.ExecSync(api_pb2.ExecSyncRequest(
                container_id=cid, cmd=probe.command, timeout=probe.timeout),
                timeout=probe.timeout + RUNTIME_REQUEST_TIMEOUT)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return "timeout"
            raise
        return "success" if r.exit_code == 0 else "failure"

    # ---- log rotation (pkg/kubelet/logs/container_log_manager.go) ----------

    def rotate_log(self, cid: str, now: datetime.datetime) -> Path:
        """rotateLog: compress the rotated files not yet compressed, rename the
        live log to <log>.<stamp>, ReopenContainerLog (renaming back if that
        fails).  `now` is the kubelet's clock: it rotates at most every
        10 s, so the second-granular stamps never collide."""
        log = Path(self.status(cid).status.log_path)
        for old in sorted(log.parent.glob(f"{log.name}.*")):
            if old.suffix in (".gz", ".tmp"):
                continue
            tmp = old.with_name(old.name + ".gz.tmp")
            with old.open("rb") as src, gzip.open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.rename(old.with_name(old.name + ".gz"))
            old.unlink()
        rotated = log.with_name(f"{log.name}.{now.strftime(ROTATED_STAMP)}")
        log.rename(rotated)
        try:
            self.runtime.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(
                container_id=cid), timeout=RUNTIME_REQUEST_TIMEOUT)
        except grpc.RpcError:
            rotated.rename(log)
            raise
        return rotated


class Prober(threading.Thread):
    """A probe worker: runs `probe` every period until stopped, keeping each
    result with the time it took."""

    def __init__(self, kubelet: Kubelet, cid: str, probe: Probe):
        super().__init__(daemon=True)
        self.kubelet, self.cid, self.probe = kubelet, cid, probe
        self.results: list[tuple[str, float]] = []
        self.error: Exception | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.monotonic()
            try:
                result = self.kubelet.exec_probe(self.cid, self.probe)
            except Exception as e:  # noqa: BLE001 - handed to the test
                self.error = e
                return
            self.results.append((result, time.monotonic() - started))
            self._stop_event.wait(max(self.probe.period - (time.monotonic() - started), 0))

    def finish(self) -> list[tuple[str, float]]:
        self._stop_event.set()
        self.join(30)
        assert not self.is_alive(), "a probe is stuck"
        if self.error is not None:
            raise self.error
        return self.results


def log_lines(path: Path) -> list[tuple[str, str, str]]:
    """(stream, tag, text) of each CRI log line of a file, gzipped or not."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out = []
    for line in data.decode().splitlines():
        _stamp, stream, tag, text = line.split(" ", 3)
        out.append((stream, tag, text))
    return out


def cgroup_value(dirs: list[str] | list[Path], *names: str) -> str:
    """The first of the control files `names` found in the groups `dirs`."""
    for d in map(Path, dirs):
        for name in names:
            if (d / name).exists():
                return (d / name).read_text().strip()
    raise AssertionError(f"none of {names} in {dirs}")


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ---- fixtures (import them, with tests.fixtures.registry's `registry`) -----

@pytest.fixture(scope="module")
def node(registry, tmp_path_factory):
    """One daemon per scenario file, on the bridge network."""
    yield from start_node(tmp_path_factory.mktemp("node"), registry.url, registry.host)


@pytest.fixture
def kubelet(node, handler, tmp_path):
    """A kubelet for one test, on `handler`; its pods and cgroups go at the end."""
    skip_if_confined()
    d, image = node
    k = Kubelet(d, image, tmp_path, handler)
    yield k
    k.teardown()
