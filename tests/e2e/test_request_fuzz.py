"""Property-based fuzz of CRI request fields over the real daemon socket
(issue 17: no request field may reach INTERNAL).

Hypothesis builds RunPodSandbox, CreateContainer, ExecSync, StopContainer,
UpdateContainerResources and a few id-only requests from a valid baseline
with one to three fields replaced by hostile values: text with NUL bytes,
control characters, unicode and paths like ../, huge and negative ints,
enum numbers outside their enum.  Every answer must be OK or a definite
error (never INTERNAL or UNKNOWN), the daemon must stay up, no record may
hide from the List RPCs, and once everything made is removed nothing may
be left: no record or temp file, mount, cgroup, netns, link or process.

The examples are derandomized (the same ones every run) and no example
database is kept, so CI is reproducible.  The default count keeps the run
near a minute here; for a long run:

    CRN_FUZZ_EXAMPLES=10000 flock /tmp/crn-test.lock \\
        .venv/bin/python -m pytest -s tests/e2e/test_request_fuzz.py

(-s prints the statuses seen per RPC.)"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from crio_native._proto import api_pb2
from tests.conftest import SNAPSHOTS
from tests.fixtures.oci_builder import ImageBuilder, Pusher
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

EXAMPLES = int(os.environ.get("CRN_FUZZ_EXAMPLES", "300"))
CALL_TIMEOUT = 60.0          # a call still going after this is a hang: a failure
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

# ---- values ---------------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 2, 7, 999, 1000, 1001, -1000, -1001, 65535, 65536, 2**31 - 1, 2**31,
             -2**31, 2**32 - 1, 2**32, 10**12, 2**53 + 1, 2**63 - 1, -2**63, 2**64 - 1]
HOSTILE_TEXT = ["", " ", ".", "..", "../..", "../../../etc/passwd", "/", "//", "/..", "a/../..",
                "a\0b", "\0", "\n", "a\nb", "\t", "\x7f", "\x1b[31m", "\u0085", "é", "\u202e",
                "\U0001f600", "a;b=c", "K8S_POD_NAME=x;K8S_POD_NAMESPACE=y", "=", ";", "-",
                "--help", "$(id)", "`id`", "*", "%s%n", "a b", "x" * 300, "y" * 5000,
                "SIGKILL", "2MB", "0-1", "1-0", "net.ipv4.ip_forward", "kernel.shmmax",
                "cpu.weight", "memory.max", "runtime/default", "unconfined", "localhost/x",
                "/proc/self", "/proc/self/x", "a/" * 40 + "x", "a/" * 1500 + "x", "/" + "z" * 300,
                "/" + "z" * 5000,
                "s0:c1,c2", "CAP_SYS_ADMIN", "ALL", "sys_admin"]


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([v for v in EDGE_INTS if lo <= v <= hi]),
                     st.integers(lo, hi))


INT64, INT32 = ints(-2**63, 2**63 - 1), ints(-2**31, 2**31 - 1)
UINT32, UINT64 = ints(0, 2**32 - 1), ints(0, 2**64 - 1)
TEXT = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=24))
TEXTS = st.lists(TEXT, max_size=3)
TEXT_MAP = st.dictionaries(TEXT, TEXT, max_size=3)


def enum(values: list[int]) -> st.SearchStrategy[int]:
    """A defined value, or any int32 (proto3 enums are open)."""
    return st.one_of(st.sampled_from(values), INT32)


NAMESPACE_MODE = enum([0, 1, 2, 3])
PROFILE_TYPE = enum([0, 1, 2])
# BIDIRECTIONAL (2) is left out: with a hostile container_path, the mounts
# the runtime makes below it would propagate to the host's test directory.
PROPAGATION = st.one_of(st.sampled_from([0, 1]), INT32.filter(lambda v: v not in (0, 1, 2)))
SIGNAL = enum(list(range(66)))


def host_paths(safe: list[str]) -> st.SearchStrategy[str]:
    """Host paths for mounts and devices: the test's own, hostile strings
    that name no path, or text below a directory that does not exist (a
    fuzzer must not bind the host's / or /etc)."""
    return st.one_of(st.sampled_from(safe),
                     st.sampled_from(["", "relative", "../..", "a\0b", "/no/such\0"]),
                     TEXT.map(lambda text: "/crn-fuzz-nonexistent/" + text))


# ---- mutations: one field of a valid request each -----------------------------------

Mutation = Callable[[Any, Any], None]    # (draw, request) -> None


def pod_mutations() -> dict[str, Mutation]:
    def cfg(r):
        return r.config

    def sc(r):
        return r.config.linux.security_context

    return {
        "metadata.name": lambda d, r: setattr(cfg(r).metadata, "name", d(TEXT)),
        "metadata.namespace": lambda d, r: setattr(cfg(r).metadata, "namespace", d(TEXT)),
        "metadata.uid": lambda d, r: setattr(cfg(r).metadata, "uid", d(TEXT)),
        "metadata.attempt": lambda d, r: setattr(cfg(r).metadata, "attempt", d(UINT32)),
        "hostname": lambda d, r: setattr(cfg(r), "hostname", d(TEXT)),
        "log_directory": lambda d, r: setattr(cfg(r), "log_directory", d(TEXT)),
        "dns_config": lambda d, r: cfg(r).dns_config.CopyFrom(api_pb2.DNSConfig(
            servers=d(TEXTS), searches=d(TEXTS), options=d(TEXTS))),
        "port_mappings": lambda d, r: cfg(r).port_mappings.append(api_pb2.PortMapping(
            protocol=d(enum([0, 1, 2])), container_port=d(INT32), host_port=d(INT32),
            host_ip=d(TEXT))),
        "labels": lambda d, r: cfg(r).labels.update(d(TEXT_MAP)),
        "annotations": lambda d, r: cfg(r).annotations.update(d(TEXT_MAP)),
        "annotations[shm]": lambda d, r: cfg(r).annotations.update(
            {d(st.sampled_from(["io.kubernetes.cri-o.ShmSize",
                                "kubernetes.io/ingress-bandwidth",
                                "kubernetes.io/egress-bandwidth"])): d(TEXT)}),
        "linux.cgroup_parent": lambda d, r: setattr(cfg(r).linux, "cgroup_parent", d(TEXT)),
        "linux.sysctls": lambda d, r: cfg(r).linux.sysctls.update(d(TEXT_MAP)),
        "namespace_options": lambda d, r: sc(r).namespace_options.CopyFrom(
            api_pb2.NamespaceOption(network=d(NAMESPACE_MODE), pid=d(NAMESPACE_MODE),
                                    ipc=d(NAMESPACE_MODE), target_id=d(TEXT))),
        "userns_options": lambda d, r: sc(r).namespace_options.userns_options.CopyFrom(
            api_pb2.UserNamespace(mode=d(NAMESPACE_MODE), uids=[api_pb2.IDMapping(
                host_id=d(UINT32), container_id=d(UINT32), length=d(UINT32))])),
        "selinux_options": lambda d, r: sc(r).selinux_options.CopyFrom(api_pb2.SELinuxOption(
            user=d(TEXT), role=d(TEXT), type=d(TEXT), level=d(TEXT))),
        "run_as_user": lambda d, r: sc(r).run_as_user.CopyFrom(api_pb2.Int64Value(
            value=d(INT64))),
        "run_as_group": lambda d, r: sc(r).run_as_group.CopyFrom(api_pb2.Int64Value(
            value=d(INT64))),
        "supplemental_groups": lambda d, r: sc(r).supplemental_groups.extend(
            d(st.lists(INT64, max_size=3))),
        "supplemental_groups_policy": lambda d, r: setattr(
            sc(r), "supplemental_groups_policy", d(enum([0, 1]))),
        "seccomp": lambda d, r: sc(r).seccomp.CopyFrom(api_pb2.SecurityProfile(
            profile_type=d(PROFILE_TYPE), localhost_ref=d(TEXT))),
        "apparmor": lambda d, r: sc(r).apparmor.CopyFrom(api_pb2.SecurityProfile(
            profile_type=d(PROFILE_TYPE), localhost_ref=d(TEXT))),
        "seccomp_profile_path": lambda d, r: setattr(sc(r), "seccomp_profile_path", d(TEXT)),
        "privileged": lambda d, r: setattr(sc(r), "privileged", d(st.booleans())),
        "readonly_rootfs": lambda d, r: setattr(sc(r), "readonly_rootfs", d(st.booleans())),
        "linux.resources": lambda d, r: cfg(r).linux.resources.CopyFrom(d(resources())),
        "linux.overhead": lambda d, r: cfg(r).linux.overhead.CopyFrom(d(resources())),
        "runtime_handler": lambda d, r: setattr(r, "runtime_handler", d(st.one_of(
            st.sampled_from(["", "builtin", "runc", "crun"]), TEXT))),
    }


@st.composite
def resources(draw) -> api_pb2.LinuxContainerResources:
    res = api_pb2.LinuxContainerResources()
    for name in ("cpu_period", "cpu_quota", "cpu_shares", "memory_limit_in_bytes",
                 "oom_score_adj", "memory_swap_limit_in_bytes"):
        if draw(st.booleans()):
            setattr(res, name, draw(INT64))
    for name in ("cpuset_cpus", "cpuset_mems"):
        if draw(st.booleans()):
            setattr(res, name, draw(TEXT))
    if draw(st.booleans()):
        res.hugepage_limits.append(api_pb2.HugepageLimit(
            page_size=draw(st.one_of(st.sampled_from(["2MB", "1GB"]), TEXT)),
            limit=draw(UINT64)))
    if draw(st.booleans()):
        res.unified.update(draw(TEXT_MAP))
    return res


def container_mutations(safe_dirs: list[str]) -> dict[str, Mutation]:
    def cfg(r):
        return r.config

    def sc(r):
        return r.config.linux.security_context

    def mount(d, r):
        cfg(r).mounts.append(api_pb2.Mount(
            container_path=d(st.one_of(st.sampled_from(["/data", "/dev", "/proc", "/", "/etc"]),
                                       TEXT)),
            host_path=d(host_paths(safe_dirs)), readonly=d(st.booleans()),
            selinux_relabel=False, propagation=d(PROPAGATION),
            recursive_read_only=d(st.booleans()), image_sub_path=d(TEXT)))

    return {
        "metadata.name": lambda d, r: setattr(cfg(r).metadata, "name", d(TEXT)),
        "metadata.attempt": lambda d, r: setattr(cfg(r).metadata, "attempt", d(UINT32)),
        "image.image": lambda d, r: setattr(cfg(r).image, "image", d(TEXT)),
        "image.user_specified_image": lambda d, r: setattr(
            cfg(r).image, "user_specified_image", d(TEXT)),
        "command": lambda d, r: cfg(r).command.extend(d(TEXTS)),
        "args": lambda d, r: cfg(r).args.extend(d(TEXTS)),
        "working_dir": lambda d, r: setattr(cfg(r), "working_dir", d(TEXT)),
        "envs": lambda d, r: cfg(r).envs.append(api_pb2.KeyValue(
            key=d(TEXT), value=d(st.binary(max_size=16)))),
        "mounts": mount,
        "devices": lambda d, r: cfg(r).devices.append(api_pb2.Device(
            container_path=d(TEXT), host_path=d(host_paths(["/dev/null", "/dev/zero"])),
            permissions=d(TEXT))),
        "labels": lambda d, r: cfg(r).labels.update(d(TEXT_MAP)),
        "annotations": lambda d, r: cfg(r).annotations.update(d(TEXT_MAP)),
        "log_path": lambda d, r: setattr(cfg(r), "log_path", d(TEXT)),
        "stdio": lambda d, r: (setattr(cfg(r), "stdin", d(st.booleans())),
                               setattr(cfg(r), "stdin_once", d(st.booleans())),
                               setattr(cfg(r), "tty", d(st.booleans()))),
        "linux.resources": lambda d, r: cfg(r).linux.resources.CopyFrom(d(resources())),
        "capabilities": lambda d, r: sc(r).capabilities.CopyFrom(api_pb2.Capability(
            add_capabilities=d(TEXTS), drop_capabilities=d(TEXTS),
            add_ambient_capabilities=d(TEXTS))),
        "privileged": lambda d, r: setattr(sc(r), "privileged", d(st.booleans())),
        "namespace_options": lambda d, r: sc(r).namespace_options.CopyFrom(
            api_pb2.NamespaceOption(network=d(NAMESPACE_MODE), pid=d(NAMESPACE_MODE),
                                    ipc=d(NAMESPACE_MODE), target_id=d(TEXT))),
        "userns_options": lambda d, r: sc(r).namespace_options.userns_options.CopyFrom(
            api_pb2.UserNamespace(mode=d(NAMESPACE_MODE), uids=[api_pb2.IDMapping(
                host_id=d(UINT32), container_id=d(UINT32), length=d(UINT32))])),
        "run_as_user": lambda d, r: sc(r).run_as_user.CopyFrom(api_pb2.Int64Value(
            value=d(INT64))),
        "run_as_group": lambda d, r: sc(r).run_as_group.CopyFrom(api_pb2.Int64Value(
            value=d(INT64))),
        "run_as_username": lambda d, r: setattr(sc(r), "run_as_username", d(TEXT)),
        "supplemental_groups": lambda d, r: sc(r).supplemental_groups.extend(
            d(st.lists(INT64, max_size=3))),
        "supplemental_groups_policy": lambda d, r: setattr(
            sc(r), "supplemental_groups_policy", d(enum([0, 1]))),
        "masked_paths": lambda d, r: sc(r).masked_paths.extend(d(TEXTS)),
        "readonly_paths": lambda d, r: sc(r).readonly_paths.extend(d(TEXTS)),
        "readonly_rootfs": lambda d, r: setattr(sc(r), "readonly_rootfs", d(st.booleans())),
        "no_new_privs": lambda d, r: setattr(sc(r), "no_new_privs", d(st.booleans())),
        "seccomp": lambda d, r: sc(r).seccomp.CopyFrom(api_pb2.SecurityProfile(
            profile_type=d(PROFILE_TYPE), localhost_ref=d(TEXT))),
        "apparmor": lambda d, r: sc(r).apparmor.CopyFrom(api_pb2.SecurityProfile(
            profile_type=d(PROFILE_TYPE), localhost_ref=d(TEXT))),
        "apparmor_profile": lambda d, r: setattr(sc(r), "apparmor_profile", d(TEXT)),
        "seccomp_profile_path": lambda d, r: setattr(sc(r), "seccomp_profile_path", d(TEXT)),
        "selinux_options": lambda d, r: sc(r).selinux_options.CopyFrom(api_pb2.SELinuxOption(
            user=d(TEXT), role=d(TEXT), type=d(TEXT), level=d(TEXT))),
        "stop_signal": lambda d, r: setattr(cfg(r), "stop_signal", d(SIGNAL)),
        "CDI_devices": lambda d, r: cfg(r).CDI_devices.append(api_pb2.CDIDevice(
            name=d(TEXT))),
    }


def mutated(draw, request, mutations: dict[str, Mutation]) -> list[str]:
    """Apply one to three of `mutations` to `request`; their names."""
    names = draw(st.lists(st.sampled_from(sorted(mutations)), min_size=1, max_size=3,
                          unique=True))
    for name in names:
        mutations[name](draw, request)
    return names


# ---- the daemon's world: a pod and containers the examples aim at ------------------

class World:
    """The started daemon with a READY host-network pod, a RUNNING
    container and a CREATED one; rebuilt when an example took them away
    (a random id may be a prefix of theirs, and prefixes match)."""

    def __init__(self, d, image_name: str, base: Path):
        self.d, self.image_name, self.base = d, image_name, base
        self.logs = base / "pod-logs"
        self.host_dirs = [str(base / "host-a"), str(base / "host-b")]
        for p in [self.logs, *map(Path, self.host_dirs)]:
            p.mkdir(parents=True, exist_ok=True)
        self.statuses: Counter[tuple[str, str]] = Counter()
        self.pod = self.running = self.created = ""
        self.trail: list[tuple[str, Any]] = []   # this example's requests
        # Set once a record was left hidden: while it stays, every later
        # example (Hypothesis's shrinking included) fails with the story of
        # the first one rather than its own.
        self.poisoned = ""

    # requests with everything valid, for the examples to spoil
    def pod_request(self, name: str = "fuzz") -> api_pb2.RunPodSandboxRequest:
        config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="fuzz", uid=f"uid-{name}"),
            hostname=name, log_directory=str(self.logs / name))
        config.linux.security_context.namespace_options.network = api_pb2.NODE
        config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
        return api_pb2.RunPodSandboxRequest(config=config)

    def container_request(self, name: str = "c",
                          command=("sleep", "1000")) -> api_pb2.CreateContainerRequest:
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name),
            image=api_pb2.ImageSpec(image=self.image_name), command=list(command),
            log_path=f"{name}/0.log")
        return api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=config,
                                              sandbox_config=self.pod_request().config)

    def ensure(self) -> None:
        """The base pod READY, `running` RUNNING, `created` CREATED."""
        self.trail = []
        rt = self.d.runtime
        pods = {p.id: p for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
        if self.pod not in pods or pods[self.pod].state != api_pb2.SANDBOX_READY:
            if self.pod:
                rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.pod))
            self.pod = rt.RunPodSandbox(self.pod_request(), timeout=CALL_TIMEOUT).pod_sandbox_id
            self.running = self.created = ""
        states = {c.id: c.state for c in
                  rt.ListContainers(api_pb2.ListContainersRequest()).containers}
        if states.get(self.running) != api_pb2.CONTAINER_RUNNING:
            self.running = self._replace(self.running, "running", start=True)
        if states.get(self.created) != api_pb2.CONTAINER_CREATED:
            self.created = self._replace(self.created, "created", start=False)

    def _replace(self, old: str, name: str, start: bool) -> str:
        rt = self.d.runtime
        if old:
            rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=old))
        cid = rt.CreateContainer(self.container_request(name),
                                 timeout=CALL_TIMEOUT).container_id
        if start:
            rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        return cid

    def call(self, rpc: str, request) -> Any:
        """Send `request`; the response, or None for a definite error."""
        self.trail.append((rpc, request))
        try:
            response = getattr(self.d.runtime, rpc)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
            self.statuses[(rpc, code.name)] += 1
            assert self.d.proc.poll() is None, f"the daemon died at {rpc}: {self.d.log()[-3000:]}"
            assert not (code == grpc.StatusCode.DEADLINE_EXCEEDED
                        and details == "Deadline Exceeded"), f"{rpc} hung: {request}"
            assert code not in FORBIDDEN, f"{rpc} answered {code.name}: {details}\n{request}"
            return None
        self.statuses[(rpc, "OK")] += 1
        return response

    def no_hidden_records(self, settle: float = 2.0) -> None:
        """Every record on disk is one the List RPCs show, and no temp file
        of a record write is left.  What shows only for a moment is no
        leak: the exit watcher saves a container's exit at any time (its
        temp file is there until the rename)."""
        deadline = time.monotonic() + settle
        while True:
            hidden = self._hidden_records()
            if not hidden:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.poisoned = self.poisoned or self._story_of(hidden)
        raise AssertionError(self.poisoned)

    def _hidden_records(self) -> list[Path]:
        rt = self.d.runtime
        listed = {p.id for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
        listed |= {c.id for c in rt.ListContainers(api_pb2.ListContainersRequest()).containers}
        # a listed object's record (<id>.json) and what is kept beside it
        # (<id>.attestation) are not hidden; a temp file (.<id>...) always is
        return sorted(p for kind in ("sandboxes", "containers")
                      for p in (self.d.base / "root" / kind).iterdir()
                      if p.name.startswith(".") or p.name.split(".", 1)[0] not in listed)

    def _story_of(self, hidden: list[Path]) -> str:
        """The hidden records, what the daemon logged of them, and the
        requests of the example that left them."""
        lines = ["records the List RPCs do not show:"]
        log = self.d.log().splitlines()
        for path in hidden:
            lines.append(f"{path}: {path.read_text() if path.exists() else '(gone since)'}")
            record_id = path.name.split(".")[0]
            lines += [line for line in log if record_id and record_id in line]
        lines.append("after the requests:")
        lines += [f"{rpc}: {request}" for rpc, request in self.trail]
        return "\n".join(lines)


# ---- one example per request kind ----------------------------------------------------

def run_pod_sandbox(world: World, draw) -> None:
    """A spoilt pod; if it runs, a plain container is created and started
    in it (what the pod's fields become in its containers: hostname,
    sysctls, cgroup parent, namespaces)."""
    request = world.pod_request("fuzz-pod")
    mutated(draw, request, pod_mutations())
    # every draw comes before the daemon answers: Hypothesis replays an
    # example by its draws, which must not depend on the outcome
    with_container = draw(st.booleans())
    response = world.call("RunPodSandbox", request)
    if response is None:
        return
    pod_id = response.pod_sandbox_id
    if with_container:
        container = world.container_request("in-fuzz-pod", command=("true",))
        container.pod_sandbox_id = pod_id
        container.sandbox_config.CopyFrom(request.config)
        created = world.call("CreateContainer", container)
        if created is not None:
            world.call("StartContainer", api_pb2.StartContainerRequest(
                container_id=created.container_id))
    assert world.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(
        pod_sandbox_id=pod_id)) is not None


# Containers whose fields could make their process act on the host (a
# privileged one in the host's PID namespace running a random command) are
# created, never started.
NEVER_STARTED = {"command", "args", "privileged", "namespace_options", "capabilities",
                 "userns_options", "run_as_user", "run_as_username"}


def create_container(world: World, draw) -> None:
    request = world.container_request("fuzz-c", command=("true",))
    spoilt = mutated(draw, request, container_mutations(world.host_dirs))
    start = draw(st.booleans()) and not NEVER_STARTED & set(spoilt)
    response = world.call("CreateContainer", request)
    if response is None:
        return
    if start:
        world.call("StartContainer", api_pb2.StartContainerRequest(
            container_id=response.container_id))
    assert world.call("RemoveContainer", api_pb2.RemoveContainerRequest(
        container_id=response.container_id)) is not None


SAFE_COMMANDS = [["true"], ["echo"], ["printf", "%s"], ["sh", "-c", "exit 7"], ["id"]]


def exec_sync(world: World, draw) -> None:
    cmd = draw(st.one_of(
        st.sampled_from(SAFE_COMMANDS).flatmap(lambda c: st.just(c) | TEXTS.map(lambda a: c + a)),
        TEXTS.map(lambda args: ["/no/such/" + a.replace("/", "_") for a in args]),
        st.sampled_from([[], [""], ["a\0b"], ["true\0"]])))
    container_id = draw(st.one_of(st.just(world.running), st.just(world.created), TEXT))
    world.call("ExecSync", api_pb2.ExecSyncRequest(container_id=container_id, cmd=cmd,
                                                   timeout=draw(INT64)))


def stop_container(world: World, draw) -> None:
    # The CREATED container: stopping one never started kills it at once, so
    # no timeout makes the example wait.  Random ids get a prefix no hex id
    # has: ids match by prefix, and "0" with timeout 2**63-1 would rightly
    # wait forever on the RUNNING one (sleep as PID 1 ignores SIGTERM).
    container_id = draw(st.one_of(st.just(world.created), st.just(""),
                                  TEXT.map(lambda text: "no-such-" + text)))
    world.call("StopContainer", api_pb2.StopContainerRequest(container_id=container_id,
                                                             timeout=draw(INT64)))


def update_resources(world: World, draw) -> None:
    container_id = draw(st.one_of(st.just(world.running), st.just(world.created), TEXT))
    world.call("UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
        container_id=container_id, linux=draw(resources()), annotations=draw(TEXT_MAP)))


def by_id(world: World, draw) -> None:
    """The requests that carry an id (and a flag) only."""
    rpc, cls, key = draw(st.sampled_from([
        ("ReopenContainerLog", api_pb2.ReopenContainerLogRequest, "container_id"),
        ("ContainerStatus", api_pb2.ContainerStatusRequest, "container_id"),
        ("ContainerStats", api_pb2.ContainerStatsRequest, "container_id"),
        ("PodSandboxStatus", api_pb2.PodSandboxStatusRequest, "pod_sandbox_id"),
        ("PodSandboxStats", api_pb2.PodSandboxStatsRequest, "pod_sandbox_id"),
        ("StopPodSandbox", api_pb2.StopPodSandboxRequest, "pod_sandbox_id"),
    ]))
    target = draw(st.one_of(st.just(world.running), st.just(world.pod), TEXT))
    world.call(rpc, cls(**{key: target}))


def list_filtered(world: World, draw) -> None:
    state = draw(enum([0, 1, 2, 3]))
    world.call("ListContainers", api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
        id=draw(TEXT), state=api_pb2.ContainerStateValue(state=state),
        pod_sandbox_id=draw(TEXT), label_selector=draw(TEXT_MAP))))
    world.call("ListPodSandbox", api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(
        id=draw(TEXT), state=api_pb2.PodSandboxStateValue(state=draw(enum([0, 1]))),
        label_selector=draw(TEXT_MAP))))


# weighted: the creates reach the most code
KINDS = [run_pod_sandbox] * 4 + [create_container] * 5 + [exec_sync] * 2 + [
    stop_container, update_resources, update_resources, by_id, list_filtered]


@pytest.fixture(scope="module")
def busybox(registry):  # noqa: F811
    name = f"{registry.host}/fuzz/busybox:1"
    Pusher(registry.url).push_image("fuzz/busybox", "1", ImageBuilder().busybox().build())
    return name


def snapshot() -> dict[str, set]:
    return {name: snap() for name, snap in SNAPSHOTS.items()}


def leaks_since(before: dict[str, set], settle: float = 10.0) -> dict[str, list[str]]:
    deadline = time.monotonic() + settle
    while True:
        now = snapshot()
        leaks = {k: sorted(map(str, now[k] - before[k])) for k in now if now[k] - before[k]}
        if not leaks or time.monotonic() > deadline:
            return leaks
        time.sleep(0.2)


def remove_everything(d, image: str) -> None:
    for pod in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    d.images.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image)))


def test_no_request_field_answers_internal(daemon_factory, busybox, tmp_path):
    before = snapshot()
    d = daemon_factory().start()
    world = World(d, busybox, tmp_path)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(data=st.data())
    def one_request(data):
        world.ensure()
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        kind(world, data.draw)
        world.no_hidden_records()

    try:
        d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=busybox)))
        one_request()
    finally:
        print(f"\nrequest fuzz: {EXAMPLES} examples, {sum(world.statuses.values())} calls")
        for (rpc, code), n in sorted(world.statuses.items()):
            print(f"  {rpc:26} {code:20} {n}")
        if d.proc is not None and d.proc.poll() is None:
            remove_everything(d, busybox)   # also after a failure: no leak on top of it
    assert d.stop() == 0
    left = sorted(str(p.relative_to(d.base)) for kind in ("sandboxes", "containers")
                  for p in (d.base / "root" / kind).iterdir())
    assert left == [], f"records left after removing everything: {left}"
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if str(d.base) in line], "mounts left under the daemon's dirs"
    assert leaks_since(before) == {}
