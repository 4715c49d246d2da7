"""Issue 20, items 1 and 2 over real gRPC on the built-in handler: the
seccomp recorder's learn mode writes a profile that lets the recorded
workload run again as Localhost and refuses a syscall it never made; the
audit stream attributes a denied syscall in the daemon's log and in
container_runtime_crio_native_seccomp_denials_total, and a storm of 10k
denials finishes promptly with a bounded number of log lines.

A small static C probe (built here with gcc) makes the syscalls and prints
name=errno (0 for success)."""
from __future__ import annotations

import json
import platform
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.container.seccomp_audit import BURST
from crio_native.container.seccomp_recorder import ANNOTATION, architectures
from tests.e2e.test_container_security import remove_pod, run_once, shell
from tests.e2e.test_containers import serving_image
from tests.ports import free_port
from tests.e2e.test_seccomp_extras import build_static_probe, probe_results
from tests.fixtures.oci_builder import ImageBuilder, Pusher, file
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

SC = api_pb2.SecurityProfile
EPERM, EBADF = 1, 9
COUNTER = "container_runtime_crio_native_seccomp_denials_total"

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Each argument names a call; prints name=errno (0: it succeeded).
   "storm=N": N vmsplice calls, prints storm=<how many failed with EPERM>. */
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *n = argv[i];
        long r;
        errno = 0;
        if (!strncmp(n, "storm=", 6)) {
            long count = atol(n + 6), refused = 0;
            for (long k = 0; k < count; k++)
                if (syscall(SYS_vmsplice, -1, NULL, 0, 0) < 0 && errno == EPERM)
                    refused++;
            printf("storm=%ld\n", refused);
            fflush(stdout);
            continue;
        }
        if (!strcmp(n, "vmsplice")) r = syscall(SYS_vmsplice, -1, NULL, 0, 0);
        else if (!strcmp(n, "unshare")) r = syscall(SYS_unshare, 0);
        else if (!strcmp(n, "inet")) r = socket(2, SOCK_DGRAM, 0);
        else { printf("%s=unknown\n", n); return 2; }
        printf("%s=%d\n", n, r < 0 ? errno : 0);
        fflush(stdout);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def recorder_image(registry, tmp_path_factory):  # noqa: F811
    probe = build_static_probe(tmp_path_factory, PROBE_C)
    b = ImageBuilder(labels={"probe": "recorder"}).busybox()
    image = b.add_layer([file("bin/probe", probe, mode=0o755)]).build()
    pushed = Pusher(registry.url).push_image("e2e/probe-recorder", "1", image)
    return f"{registry.host}/e2e/probe-recorder:1", pushed


@pytest.fixture
def rdaemon(daemon_factory, recorder_image, tmp_path):
    """The built-in handler allows the recorder annotation; the audit stream
    and the metrics endpoint are on; profiles go under tmp_path/profiles."""
    d = daemon_factory()
    d.prepare()
    d.profile_root = tmp_path / "profiles"
    d.metrics_port = free_port()
    (d.base / "crio-native.conf.d" / "50-seccomp.conf").write_text(
        f'[runtime]\nseccomp_profile_root = "{d.profile_root}"\nseccomp_audit = true\n'
        "[runtime.runtimes.builtin]\n"
        f'allowed_annotations = ["{ANNOTATION}"]\n'
        f"[metrics]\nenable_metrics = true\nmetrics_port = {d.metrics_port}\n")
    d.start()
    yield from serving_image(d, recorder_image, tmp_path)


def start_pod(d, name="pod", annotations=None, handler="builtin") -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="audited", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name), annotations=annotations or {})
    sc = config.linux.security_context
    sc.namespace_options.pid = api_pb2.CONTAINER
    sc.namespace_options.network = api_pb2.NODE
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def with_profile(config, kind, ref=""):
    config.linux.security_context.seccomp.profile_type = kind
    if ref:
        config.linux.security_context.seccomp.localhost_ref = ref
    return config


def wait_file(path: Path, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return json.loads(path.read_text())


def scrape(d) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics",
                                timeout=10) as r:
        return r.read().decode()


def counter(d, syscall: str, container: str) -> float:
    pattern = re.compile(rf'^{COUNTER}\{{(.*)\}} (\S+)$', re.M)
    for labels, value in pattern.findall(scrape(d)):
        if f'syscall="{syscall}"' in labels and f'container="{container}"' in labels:
            return float(value)
    return 0.0


WORKLOAD = "echo recorded-run; probe inet; cat /etc/hostname >/dev/null; echo done"


def test_recorded_profile_runs_the_workload_again_and_refuses_the_rest(rdaemon):
    d = rdaemon
    pod = start_pod(d, annotations={f"{ANNOTATION}/learner": "learned"})
    # learn mode: the request's profile is set aside, every call is allowed
    code, out = run_once(d, pod, with_profile(shell(d, WORKLOAD, name="learner"),
                                              SC.RuntimeDefault))
    assert code == 0, out
    assert "recorded-run" in out and "done" in out and probe_results(out) == {"inet": 0}, out
    path = d.profile_root / "learned.json"
    profile = wait_file(path)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO", profile
    # the host's arch and its compat ones (x86_64: x86, x32)
    assert profile["architectures"] == architectures(), profile
    assert len(profile["architectures"]) >= 2 or platform.machine() not in ("x86_64",
                                                                              "aarch64")
    (rule,) = profile["syscalls"]
    assert rule["action"] == "SCMP_ACT_ALLOW"
    names = rule["names"]
    assert names == sorted(names), names
    for seen in ("execve", "socket", "write", "exit_group"):
        assert seen in names, (seen, names)
    assert "unshare" not in names and "vmsplice" not in names, names
    assert "seccomp recorder wrote profile" in d.log()

    # the same workload under the recorded profile, as Localhost
    code, out = run_once(d, pod, with_profile(shell(d, WORKLOAD, name="again"), SC.Localhost,
                                              str(path)))
    assert code == 0, out
    assert "recorded-run" in out and "done" in out and probe_results(out) == {"inet": 0}, out
    # what it never made is refused (unconfined, unshare(0) succeeds and
    # vmsplice(-1) reaches the kernel's EBADF)
    code, out = run_once(d, pod, with_profile(shell(d, "probe inet unshare vmsplice",
                                                    name="stranger"), SC.Localhost, str(path)))
    assert probe_results(out) == {"inet": 0, "unshare": EPERM, "vmsplice": EPERM}, out
    code, out = run_once(d, pod, with_profile(shell(d, "probe unshare vmsplice", name="free"),
                                              SC.Unconfined))
    assert probe_results(out) == {"unshare": 0, "vmsplice": EBADF}, out
    remove_pod(d, pod)


def test_recorder_name_must_be_a_file_name(rdaemon):
    import grpc
    from tests.e2e.test_containers import create
    d = rdaemon
    pod = start_pod(d, name="bad", annotations={f"{ANNOTATION}/c": "../escape"})
    with pytest.raises(grpc.RpcError) as e:
        create(d, pod, shell(d, "true", name="c"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert f"{ANNOTATION}/c" in e.value.details()
    remove_pod(d, pod)


@pytest.mark.parametrize("handler", ["builtin", "runc"])
def test_audit_attributes_a_denied_syscall(rdaemon, handler):
    """runc hands its notify fd to the same agent (listenerPath)."""
    if handler == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    d = rdaemon
    pod = start_pod(d, name="web", handler=handler)
    before = counter(d, "vmsplice", "auditee")
    code, out = run_once(d, pod, with_profile(shell(d, "probe vmsplice inet", name="auditee"),
                                              SC.RuntimeDefault))
    assert probe_results(out) == {"vmsplice": EPERM, "inet": 0}, out
    assert counter(d, "vmsplice", "auditee") == before + 1
    lines = [ln for ln in d.log().splitlines()
             if "seccomp audit: syscall 'vmsplice'" in ln and "container=auditee" in ln]
    assert len(lines) == 1, lines
    line = lines[0]
    repo = d.image_name.rsplit(":", 1)[0]
    for want in ("pod=web", "namespace=audited", "syscall=vmsplice",
                 f"image={repo}@sha256:", "image_id=sha256:"):
        assert want in line, (want, line, d.image_name)
    remove_pod(d, pod)


def test_audit_rate_limits_a_denial_storm(rdaemon):
    d = rdaemon
    pod = start_pod(d, name="storm")
    started = time.monotonic()
    code, out = run_once(d, pod, with_profile(shell(d, "probe storm=10000", name="stormy"),
                                              SC.RuntimeDefault))
    took = time.monotonic() - started
    assert code == 0 and probe_results(out) == {"storm": 10000}, out
    assert took < 25, took
    assert counter(d, "vmsplice", "stormy") == 10000
    lines = [ln for ln in d.log().splitlines()
             if "seccomp audit: syscall" in ln and "container=stormy" in ln]
    # the burst, then at most one a second while it ran
    assert 1 <= len(lines) <= BURST + int(took) + 1, len(lines)
    assert "were rate-limited" in d.log()
    remove_pod(d, pod)


def test_audit_counts_a_logged_syscall_and_lets_it_run(rdaemon, tmp_path):
    """SCMP_ACT_LOG: the call goes on (unshare(0) succeeds) and is counted."""
    d = rdaemon
    logged = tmp_path / "log-unshare.json"
    logged.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_LOG"},
                     {"names": ["vmsplice"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    pod = start_pod(d, name="logged")
    code, out = run_once(d, pod, with_profile(shell(d, "probe unshare vmsplice inet",
                                                    name="logger"), SC.Localhost, str(logged)))
    assert probe_results(out) == {"unshare": 0, "vmsplice": 13, "inet": 0}, out
    assert counter(d, "unshare", "logger") == 1
    assert counter(d, "vmsplice", "logger") == 1
    remove_pod(d, pod)


def test_audit_after_a_daemon_restart_keeps_the_answers(rdaemon, tmp_path):
    """A restarted daemon listens again for a running container's execs with
    the answers and attribution kept in its spec: the profile's own errno for
    a refused call, the call going on for a logged one, both counted."""
    import signal
    d = rdaemon
    logged = tmp_path / "log-unshare.json"
    logged.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_LOG"},
                     {"names": ["vmsplice"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    pod = start_pod(d, name="kept")
    from tests.e2e.test_container_security import start_running
    cid = start_running(d, pod, with_profile(shell(d, "sleep 100", name="survivor"),
                                             SC.Localhost, str(logged)))
    d.stop(signal.SIGKILL)
    d.start()
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["probe", "vmsplice", "unshare"], timeout=10))
    assert probe_results(r.stdout.decode()) == {"vmsplice": 13, "unshare": 0}, r
    assert counter(d, "vmsplice", "survivor") == 1
    assert counter(d, "unshare", "survivor") == 1
    assert "container=survivor" in d.log() and "pod=kept" in d.log()
    remove_pod(d, pod)


def test_recorder_learns_from_execs_too(rdaemon):
    """An exec'd process hands its own notify fd over; its end rewrites the
    profile with what it made."""
    from tests.e2e.test_container_security import start_running
    d = rdaemon
    pod = start_pod(d, name="ex", annotations={f"{ANNOTATION}/execd": "execd"})
    cid = start_running(d, pod, shell(d, "sleep 100", name="execd"))
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["probe", "unshare"],
                                                   timeout=10))
    assert probe_results(r.stdout.decode()) == {"unshare": 0}, r
    path = d.profile_root / "execd.json"
    deadline = time.monotonic() + 10
    names: list[str] = []
    while time.monotonic() < deadline:
        if path.exists():
            names = json.loads(path.read_text())["syscalls"][0]["names"]
            if "unshare" in names:
                break
        time.sleep(0.05)
    # the exec's call, and the init's so far (sleep is still running)
    assert "unshare" in names and "execve" in names, names
    remove_pod(d, pod)
