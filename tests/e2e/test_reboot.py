"""A node reboot, simulated without rebooting (issue 17): the daemon dies by
SIGKILL, then what a reboot ends is ended by hand, for this test's daemon
only: every process its pods and containers own (what the killed daemon
left below this test process, the suite being their subreaper), every
mount under the test's directory (netns pins, /dev/shm, rootfs overlays),
and the runroot (a tmpfs on a real node).  What a reboot keeps stays: the
root (records, images, the persistent version file), the pod logs, the
IPAM reservations of host-local, and (the harder case for the cleanup: a
real reboot empties cgroupfs) the pods' and containers' now empty cgroups.

The restarted daemon must say it found a reboot, list the pod NOTREADY and
its container EXITED with CRI-O's unknown exit (255, reason Error), and
take the kubelet's cleanup (StopPodSandbox, RemoveContainer,
RemovePodSandbox) with nothing left behind: no mount, pin, link, IPAM
reservation, cgroup, process or file beyond what was there before the pod
(crash_harness's census)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from tests.e2e import crash_harness as h
from tests.e2e.test_containers import busybox_image  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.fixture(scope="module", autouse=True)
def bridge():
    yield
    h.delete_bridge()


def simulate_reboot(d, baseline: dict[str, set[str]]) -> None:
    """End what a reboot ends, of this daemon's only (the daemon is dead)."""
    assert d.proc is None
    pids = [int(p.split()[0]) for p in h.census(d)["processes"] - baseline["processes"]]
    assert pids, "the pod left no process to end"
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Reap the killed ones that are ours as their subreaper: a PID
    # namespace's init (the pod's pause) ends only once every process of its
    # namespace has been reaped, and the container's was reparented here.
    h.wait_for(lambda: reap(pids) or not (h.census(d)["processes"] - baseline["processes"]),
               what="the pods' processes to end")
    for point in sorted(h._mounts_under(d.base), key=len, reverse=True):
        subprocess.run(["umount", point], check=True, capture_output=True)
    assert h._mounts_under(d.base) == set()
    subprocess.run(["rm", "-rf", "--one-file-system", str(d.base / "run")], check=True)


def reap(pids: list[int]) -> bool:
    """waitpid each of `pids` that is our child and has ended (never any
    other child of the test process)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return False


def run_pod(d, handler: str, network: str) -> tuple[str, str]:
    pod = h.pod_config(d, name="reboot",
                       pid=api_pb2.POD if network == "pod" else api_pb2.CONTAINER)
    if network == "host":
        # no pin, no /dev/shm of its own, no infra: only its directory in the
        # runroot tells that the pod cannot be READY after the reboot
        opts = pod.linux.security_context.namespace_options
        opts.network = opts.ipc = api_pb2.NODE
    pod_id = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=pod, runtime_handler=handler), timeout=h.RPC_TIMEOUT).pod_sandbox_id
    request = h.container_request(d, pod_id, pod)
    cid = h.create(d, request)
    h.start_container(d, cid)
    h.wait_for(lambda: h.container_status(d, cid).state == api_pb2.CONTAINER_RUNNING
               and any(line.endswith(" started") for line in _log_lines(d)),
               what="the container running")
    return pod_id, cid


def _log_lines(d) -> list[str]:
    path = d.pod_logs / "reboot" / "c" / "0.log"
    return path.read_text().splitlines() if path.exists() else []


def version_in(path: Path) -> str:
    return json.loads(path.read_text())


@pytest.mark.parametrize("handler, network", [("builtin", "pod"), ("runc", "pod"),
                                              ("builtin", "host")])
def test_reboot(handler, network, tmp_path, busybox_image):  # noqa: F811
    d = h.crash_daemon(tmp_path / "d")
    d.image_name = busybox_image[0]
    try:
        h.start(d)
        h.pull(d, d.image_name)
        assert "start-up: first start" in d.log()
        from crio_native import __version__
        assert version_in(d.base / "run" / "version") == __version__
        assert version_in(d.base / "root" / "version") == __version__
        baseline = h.census(d)
        pod_id, cid = run_pod(d, handler, network)
        ip = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=pod_id), timeout=h.RPC_TIMEOUT).status.network.ip
        assert h.census(d)["ipam"] - baseline["ipam"] == ({ip} if network == "pod" else set())

        d.proc.send_signal(signal.SIGKILL)
        assert h.sigkilled(h.wait_killed(d))
        simulate_reboot(d, baseline)
        log_before = len(d.log())
        h.start(d)
        restart_log = d.log()[log_before:]
        assert "start-up: reboot" in restart_log
        assert "pod sandbox not ready after restart" in restart_log
        assert "the node rebooted" in restart_log
        if os.environ.get("CRN_REBOOT_SHOW_LOG"):
            print(restart_log)

        # the CRI view: NOTREADY pod, EXITED container with CRI-O's unknown exit
        pods = h.pods(d)
        assert [(p.id, p.state) for p in pods] == [(pod_id, api_pb2.SANDBOX_NOTREADY)]
        st = h.container_status(d, cid)
        assert st.state == api_pb2.CONTAINER_EXITED
        assert (st.exit_code, st.reason) == (255, "Error"), (st.exit_code, st.reason)
        assert "exit status unknown" in st.message
        assert st.finished_at >= st.started_at > 0
        assert _log_lines(d), "the container's log was lost"
        # the IPAM reservation outlived the reboot, as on a real node
        assert network == "host" or ip in h.census(d)["ipam"]

        # the kubelet's cleanup
        h.stop_pod(d, pod_id)
        status = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=pod_id), timeout=h.RPC_TIMEOUT).status
        assert status.state == api_pb2.SANDBOX_NOTREADY and not status.network.ip
        assert h.census(d)["ipam"] == baseline["ipam"], "CNI DEL did not free the address"
        h.remove_container(d, cid)
        h.remove_pod(d, pod_id)
        assert h.pods(d) == [] and h.containers(d) == []
        d.stop()
        h.wait_processes_settled(d, baseline["processes"])
        h.wait_for(lambda: not h.leaks(baseline, h.census(d)).get("links"), timeout=5,
                   what="the pod's veth to go with its netns")
        assert h.leaks(baseline, h.census(d)) == {}
        log_before = len(d.log())
        h.start(d)
        assert "start-up: restart after a clean shutdown" in d.log()[log_before:]
        d.stop()
    finally:
        h.remove_pods_and_stop(d)


def test_restart_after_kill_is_not_a_reboot(tmp_path):
    """kill -9 without a reboot: the runroot's version file is still there.
    An older major.minor in the persistent one tells an upgrade."""
    from crio_native import __version__

    d = h.crash_daemon(tmp_path / "d")
    try:
        h.start(d)
        d.proc.send_signal(signal.SIGKILL)
        h.wait_killed(d)
        (d.base / "root" / "version").write_text('"0.0.7"')
        log_before = len(d.log())
        h.start(d)
        restart_log = d.log()[log_before:]
        assert "start-up: restart after a crash; upgrade from 0.0.7 to " in restart_log
        assert version_in(d.base / "root" / "version") == __version__
    finally:
        d.stop()


def test_start_up_sweeps_by_id(tmp_path):
    """What no record names, found by the id in its name: a runtime's state
    dir under the runroot and a crio-<id> cgroup under the cgroup root
    (where a container of a pod without cgroup_parent gets its group)."""
    from crio_native.container import orphans

    stray = "5" * 64
    d = h.crash_daemon(tmp_path / "d")
    groups = [p / f"crio-{stray}" for p in orphans.cgroup_root_dirs(None)]
    try:
        h.start(d)
        d.stop()
        state = d.base / "run" / "runtimes" / "builtin" / stray
        state.mkdir(parents=True)
        for g in groups:
            g.mkdir()
        log_before = len(d.log())
        h.start(d)
        restart_log = d.log()[log_before:]
        assert not state.exists()
        assert [g for g in groups if g.exists()] == []
        assert "deleted a runtime state no record owns" in restart_log
        assert restart_log.count("removed a container cgroup no record owns") == len(groups)
        d.stop()
    finally:
        for g in groups:
            if g.exists():
                g.rmdir()
        if d.proc is not None:
            d.stop()


def test_reboot_with_records_cut_short(tmp_path, busybox_image):  # noqa: F811
    """A power loss: the pod's and the container's records, written without
    fsync (docs/recovery.md, "Durability"), come back empty after the reboot
    (the harsher case: the pod's network save was fsynced).  The restarted
    daemon takes each for an interrupted write: removed and logged; the
    address is freed by CNI GC from the durable result cache, the rootfs
    (in the image store, which a reboot keeps) by the rootfs sweep, and
    nothing is listed for the kubelet to clean up."""
    d = h.crash_daemon(tmp_path / "d")
    d.image_name = busybox_image[0]
    try:
        h.start(d)
        h.pull(d, d.image_name)
        baseline = h.census(d)
        pod_id, cid = run_pod(d, "builtin", "pod")
        rootfs = d.base / "root" / "storage" / "containers" / cid
        assert rootfs.is_dir()
        d.proc.send_signal(signal.SIGKILL)
        assert h.sigkilled(h.wait_killed(d))
        simulate_reboot(d, baseline)
        # A real reboot empties cgroupfs; the simulated one keeps the pod's
        # and the container's (now empty) groups, which with the records
        # gone nothing names: removed here as the reboot would.
        for group in sorted(h.census(d)["cgroups"] - baseline["cgroups"], key=len,
                            reverse=True):
            os.rmdir(group)
        records = [d.base / "root" / "sandboxes" / f"{pod_id}.json",
                   d.base / "root" / "containers" / f"{cid}.json"]
        records[0].write_bytes(b"")
        records[1].write_bytes(records[1].read_bytes()[:40])    # cut short
        log_before = len(d.log())
        h.start(d)
        restart_log = d.log()[log_before:]
        assert "start-up: reboot" in restart_log
        assert "removed a pod sandbox record a power loss cut short" in restart_log
        assert "removed a container record a power loss cut short" in restart_log
        assert "removed a container rootfs no record owns" in restart_log
        assert h.pods(d) == [] and h.containers(d) == []
        assert not any(r.exists() for r in records) and not rootfs.exists()
        assert h.census(d)["ipam"] == baseline["ipam"], "CNI GC did not free the address"
        assert _log_lines(d), "the container's log was lost"
        d.stop()
        h.wait_for(lambda: not h.leaks(baseline, h.census(d)).get("links"), timeout=5,
                   what="the pod's veth to go with its netns")
        assert h.leaks(baseline, h.census(d)) == {}
    finally:
        h.remove_pods_and_stop(d)


def test_restart_keeps_what_unreadable_records_own(tmp_path, busybox_image):  # noqa: F811
    """A record that is JSON of another shape (not what a power loss leaves:
    docs/recovery.md, "Unreadable records") is kept and logged, and the
    start-up sweeps leave alone everything its id names: the running
    container (its run dir, monitor, runtime state, rootfs mount and
    cgroups), the pod's directory, pins and network attachment.  Once the
    records are put right, the next start has the pod READY and the
    container RUNNING, and the kubelet's cleanup leaves nothing."""
    d = h.crash_daemon(tmp_path / "d")
    d.image_name = busybox_image[0]
    spoiled: list[tuple[Path, bytes]] = []
    try:
        h.start(d)
        h.pull(d, d.image_name)
        baseline = h.census(d)
        pod_id, cid = run_pod(d, "builtin", "pod")
        running = h.census(d)
        d.proc.send_signal(signal.SIGKILL)
        assert h.sigkilled(h.wait_killed(d))
        records = [d.base / "root" / "sandboxes" / f"{pod_id}.json",
                   d.base / "root" / "containers" / f"{cid}.json"]
        spoiled = [(r, r.read_bytes()) for r in records]
        for r in records:
            r.write_text(json.dumps({"written_by": "another tool"}))
        log_before = len(d.log())
        h.start(d)
        restart_log = d.log()[log_before:]
        assert "unreadable pod sandbox record" in restart_log
        assert "unreadable container record" in restart_log
        assert "no record owns" not in restart_log, restart_log
        assert "CNI GC: deleting stale attachment" not in restart_log
        assert h.pods(d) == [] and h.containers(d) == []
        assert all(r.exists() for r in records)
        now = h.census(d)
        for kind in ("mounts", "pins", "links", "ipam", "cgroups", "processes"):
            assert now[kind] == running[kind], (kind, h.leaks(running, now), h.leaks(now, running))
        # put right by hand: the next start finds both as they were
        d.stop()
        spoiled = put_back(spoiled)
        h.start(d)
        assert [p.id for p in h.pods(d) if p.state == api_pb2.SANDBOX_READY] == [pod_id]
        assert h.container_status(d, cid).state == api_pb2.CONTAINER_RUNNING
        h.kubelet_cleanup(d)
        d.stop()
        h.wait_for(lambda: not h.leaks(baseline, h.census(d)).get("links"), timeout=5,
                   what="the pod's veth to go with its netns")
        assert h.leaks(baseline, h.census(d)) == {}
    finally:
        if spoiled:        # failed before: the pod is only removed with its records
            d.stop()
            put_back(spoiled)
            h.start(d)
        h.remove_pods_and_stop(d)


def put_back(spoiled: list[tuple[Path, bytes]]) -> list[tuple[Path, bytes]]:
    for path, content in spoiled:
        path.write_bytes(content)
    return []
