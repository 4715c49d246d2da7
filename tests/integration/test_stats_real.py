"""The stats layer on this host's real files: a cgroup made below the test
process's own (or the CRIO_NATIVE_CGROUP_ROOT tests/conftest.py set up),
real processes in it doing known work; a network namespace of the test's
own with a veth pair carrying a few packets.  Everything made is removed."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from crio_native._native import ns
from crio_native.linux import cgroups
from crio_native.stats import CpuSampler, collect_container, collect_pod_sandbox, read_cgroup
from crio_native.stats.network import interface_stats, run_in_netns
from tests.hostinfo import cgroup_controller_usable

pytestmark = [pytest.mark.root, pytest.mark.vm]

MiB = 1 << 20
ALLOC = 64 * MiB
LIMIT = 512 * MiB

HOG = r"""
import sys, time
sys.stdin.readline()                 # placed in the group: allocate there
block = b"\x01" * %d
print("allocated", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
print("burned", flush=True)
sys.stdin.readline()
""" % ALLOC


@pytest.fixture
def group():
    """A fresh cgroup (one dir per hierarchy) with a memory limit where the
    host can set one; its processes are killed and it is removed after."""
    name = f"crn-stats-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    resources = {"memory": {"limit": LIMIT}} if cgroup_controller_usable("memory") else {}
    plan = cgroups.plan_cgroups(name, resources, root=os.environ.get("CRIO_NATIVE_CGROUP_ROOT"))
    made = cgroups.create(plan)
    procs: list[subprocess.Popen] = []
    plan.procs_started = procs  # type: ignore[attr-defined]
    try:
        yield plan
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        cgroups.kill_all(plan.dirs, signal.SIGKILL)
        cgroups.remove(made)


def _enter(plan: cgroups.CgroupPlan, pid: int) -> None:
    targets = [plan.into / "cgroup.procs"] if plan.into is not None else plan.procs
    for f in targets:
        f.write_text(str(pid))


def _spawn(plan, args, **kw) -> subprocess.Popen:
    p = subprocess.Popen(args, **kw)
    plan.procs_started.append(p)
    _enter(plan, p.pid)
    return p


def _step(p: subprocess.Popen, expect: str) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == expect


def test_memory_cpu_and_pids_of_real_processes(group):
    hog = _spawn(group, [sys.executable, "-c", HOG], stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE, text=True)
    sleepers = [_spawn(group, ["sleep", "60"]) for _ in range(2)]
    _step(hog, "allocated")
    st = read_cgroup(group.dirs)

    if cgroup_controller_usable("memory"):
        assert st.memory_usage_bytes > ALLOC
        assert st.working_set_bytes > ALLOC
        assert st.working_set_bytes <= st.memory_usage_bytes
        assert st.rss_bytes >= ALLOC
        assert st.page_faults > 0 and st.major_page_faults is not None
        assert st.memory_limit_bytes == LIMIT
        assert st.available_bytes == LIMIT - st.working_set_bytes
        assert st.oom_kills == 0 or st.oom_kills is None
    else:
        assert st.memory_usage_bytes is None and st.available_bytes is None
    if cgroup_controller_usable("pids"):
        assert st.pids_current == 1 + len(sleepers)
    else:
        assert st.pids_current is None

    assert st.cpu_usage_ns is not None
    sampler = CpuSampler()
    assert sampler.nano_cores("c", st.cpu_usage_ns) is None
    _step(hog, "burned")
    after = read_cgroup(group.dirs)
    assert after.cpu_usage_ns - st.cpu_usage_ns >= 250_000_000
    rate = sampler.nano_cores("c", after.cpu_usage_ns)
    assert 0 < rate <= os.cpu_count() * 1_000_000_000 * 1.1


def test_collectors_on_a_real_group(group, tmp_path):
    _spawn(group, ["sleep", "60"])
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "f").write_bytes(os.urandom(100000))
    sampler = CpuSampler()
    c = collect_container(sampler, "c1", None, {"io.kubernetes.pod.name": "p"}, {}, group.dirs,
                          upper)
    assert c.cpu.HasField("usage_core_nano_seconds")
    assert c.writable_layer.used_bytes.value >= 100000
    assert c.writable_layer.inodes_used.value == 3
    assert os.path.ismount(c.writable_layer.fs_id.mountpoint)
    assert c.memory.HasField("usage_bytes") == cgroup_controller_usable("memory")
    time.sleep(0.05)
    c2 = collect_container(sampler, "c1", None, {}, {}, group.dirs, upper)
    assert c2.cpu.HasField("usage_nano_cores")
    pod = collect_pod_sandbox(sampler, "p1", None, {}, {}, group.dirs, containers=[c2])
    assert pod.linux.process.process_count.value == (1 if cgroup_controller_usable("pids") else 0)
    assert pod.linux.containers[0].attributes.id == "c1"


def test_removed_group_reads_as_absent(group):
    dirs = list(group.dirs)
    st = read_cgroup([d / "never-made" for d in dirs])
    assert st.cpu_usage_ns is None and st.memory_usage_bytes is None


# ---- network ----------------------------------------------------------------

def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def veth_pair(tmp_path):
    """Two network namespaces pinned under tmp_path (not `ip netns add`,
    which mounts a tmpfs on /run/netns where none is), a veth pair between
    them named eth0 at both ends, 10.213.77.0/30.  `ip` runs on a thread
    inside each namespace, so it configures that one."""
    a, b = tmp_path / "net-a", tmp_path / "net-b"
    made = []
    try:
        for pin in (a, b):
            ns.create_pinned({"net": str(pin)})
            made.append(pin)
        run_in_netns(a, lambda: _ip("link", "add", "eth0", "type", "veth", "peer", "name",
                                    "eth0", "netns", str(b)))
        for pin, addr in ((a, "10.213.77.1/30"), (b, "10.213.77.2/30")):
            def configure(addr=addr):
                _ip("addr", "add", addr, "dev", "eth0")
                _ip("link", "set", "eth0", "up")
                _ip("link", "set", "lo", "up")
            run_in_netns(pin, configure)
        yield a, b
    finally:
        for pin in made:
            ns.unpin(pin)   # the last reference: the namespace and its veth end go


def _send_udp(count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(count):
            s.sendto(b"x" * 1000, ("10.213.77.2", 9))


def test_netns_counters_move(veth_pair):
    a, _b = veth_pair
    before = {s.name: s for s in interface_stats(netns_path=a)}
    assert set(before) == {"eth0"}       # lo left out
    run_in_netns(a, lambda: _send_udp(5))
    deadline = time.monotonic() + 5
    while True:
        after = {s.name: s for s in interface_stats(netns_path=a)}
        moved = (after["eth0"].tx_bytes - before["eth0"].tx_bytes >= 5000
                 and after["eth0"].rx_bytes > before["eth0"].rx_bytes)
        if moved or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert moved, (before, after)        # 5 datagrams out; ARP reply / ICMP unreachable in
    assert after["eth0"].rx_errors == 0 and after["eth0"].tx_errors == 0


def test_netns_by_pid_and_pod_message(veth_pair):
    a, _b = veth_pair
    # forked from a thread inside the namespace, the child starts in it
    p = run_in_netns(a, lambda: subprocess.Popen(["sleep", "30"]))
    try:
        assert os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        run_in_netns(a, lambda: _send_udp(3))
        by_pid = interface_stats(pid=p.pid)
        assert [s.name for s in by_pid] == ["eth0"]
        assert by_pid[0].tx_bytes >= 3000
        pod = collect_pod_sandbox(CpuSampler(), "p", None, {}, {}, [], netns_path=a)
        assert pod.linux.network.default_interface.name == "eth0"
        assert pod.linux.network.default_interface.tx_bytes.value >= 3000
        assert [i.name for i in pod.linux.network.interfaces] == ["eth0"]
    finally:
        p.kill()
        p.wait()


def test_unpinned_netns_is_absent(tmp_path):
    assert interface_stats(netns_path=tmp_path / "nope") is None
    assert interface_stats(pid=2 ** 22 + 1) is None
