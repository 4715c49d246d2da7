"""Issue 20, items 6 and 7 over real gRPC: RuntimeDefault refuses what
CRI-O's default refuses (vmsplice, AF_VSOCK sockets; NETLINK_AUDIT answers
EINVAL); a privileged container gets runtime.privileged_seccomp_profile; an
image whose manifest carries the seccomp-profile.kubernetes.cri-o.io
annotation gets that profile; the seccompNotifierAction=stop pod annotation
stops a container at its first blocked syscall, with a STOPPED event, the
reason "seccomp killed" and a daemon log line naming the syscall.

A small static C probe (built here with gcc) makes the syscalls and prints
name=errno (0 for success)."""
from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.spec.seccomp import PROFILE_ANNOTATION
from tests.e2e.test_container_security import (STATUS_FIELDS, log_text, remove_pod, run_once,
                                               shell, status_fields)
from tests.e2e.test_containers import collect_events, cstatus, create, serving_image, wait_exited
from tests.fixtures.oci_builder import OCI_MANIFEST, Blob, ImageBuilder, Pusher, file, symlink
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

SC = api_pb2.SecurityProfile
NOTIFIER = "io.kubernetes.cri-o.seccompNotifierAction"
EPERM, EBADF, EINVAL = 1, 9, 22

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Each argument names a call; prints name=errno (0: it succeeded). */
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *n = argv[i];
        long r;
        errno = 0;
        if (!strcmp(n, "vmsplice")) r = syscall(SYS_vmsplice, -1, NULL, 0, 0);
        else if (!strcmp(n, "vsock")) r = socket(40, SOCK_STREAM, 0);
        else if (!strcmp(n, "netlink-audit")) r = socket(16, SOCK_RAW, 9);
        else if (!strcmp(n, "inet")) r = socket(2, SOCK_DGRAM, 0);
        else if (!strcmp(n, "mkdir")) r = mkdir("/tmp/probe-dir", 0700);
        else { printf("%s=unknown\n", n); return 2; }
        printf("%s=%d\n", n, r < 0 ? errno : 0);
        fflush(stdout);
    }
    return 0;
}
"""

# A profile nothing built in looks like: everything allowed but mkdir.
NO_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 13}]}           # EACCES, to tell it apart


def probe_results(out: str) -> dict[str, int]:
    res = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if sep and value.lstrip("-").isdigit():
            res[name] = int(value)
    return res


def build_static_probe(tmp_path_factory, source: str) -> bytes:
    """`source` compiled with gcc -static (busybox images have no libc to
    link against); skips the test where gcc is missing."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the syscall probe cannot be built")
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(source)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(work / "probe"), str(work / "probe.c")],
                   check=True, capture_output=True)
    return (work / "probe").read_bytes()


@pytest.fixture(scope="module")
def probe_binary(tmp_path_factory) -> bytes:
    return build_static_probe(tmp_path_factory, PROBE_C)


@pytest.fixture(scope="module")
def probe_images(registry, probe_binary):  # noqa: F811
    """busybox + the probe; the same with the NO_MKDIR profile as a manifest
    annotation."""
    def image(annotations):
        # a label of its own: images are keyed by config digest, and two
        # images with one config would be one image with one manifest
        b = ImageBuilder(annotations=annotations,
                         labels={"probe": "annotated" if annotations else "plain"}).busybox()
        return b.add_layer([file("bin/probe", probe_binary, mode=0o755),
                            symlink("bin/mkdir", "busybox")]).build()
    pusher = Pusher(registry.url)
    plain = pusher.push_image("e2e/probe", "1", image({}))
    marked = pusher.push_image("e2e/probe-annotated", "1",
                               image({PROFILE_ANNOTATION: json.dumps(NO_MKDIR)}))
    # CRI-O's form: the annotation names an OCI artifact holding the profile
    artifact = f"{registry.host}/e2e/seccomp-artifact:v1"
    push_profile_artifact(pusher, "e2e/seccomp-artifact", "v1", NO_MKDIR)
    by_ref = pusher.push_image("e2e/probe-artifact", "1",
                               image({PROFILE_ANNOTATION: artifact}))
    return {"plain": (f"{registry.host}/e2e/probe:1", plain),
            "annotated": (f"{registry.host}/e2e/probe-annotated:1", marked),
            "by_ref": (f"{registry.host}/e2e/probe-artifact:1", by_ref)}


def push_profile_artifact(pusher: Pusher, repo: str, tag: str, profile: dict) -> None:
    """An OCI artifact as `oras push` makes one: an empty config, the
    profile as its one layer."""
    config = Blob("application/vnd.oci.empty.v1+json", b"{}")
    layer = Blob("application/vnd.cncf.seccomp-profile.config.v1+json",
                 json.dumps(profile).encode())
    for blob in (config, layer):
        pusher.push_blob(repo, blob)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.cncf.seccomp-profile.config.v1+json",
                "config": config.descriptor(), "layers": [layer.descriptor()]}
    pusher.push_manifest(repo, tag, Blob(OCI_MANIFEST, json.dumps(manifest).encode()))


@pytest.fixture
def pdaemon(daemon_factory, probe_images, tmp_path):
    """A daemon whose built-in handler allows the seccomp annotations, with
    privileged_seccomp_profile set, and both probe images pulled."""
    profile = tmp_path / "privileged.json"
    profile.write_text(json.dumps(NO_MKDIR))
    d = daemon_factory()
    d.prepare()
    (d.base / "crio-native.conf.d" / "50-seccomp.conf").write_text(
        f'[runtime]\nprivileged_seccomp_profile = "{profile}"\n'
        "[runtime.runtimes.builtin]\n"
        f'allowed_annotations = ["{PROFILE_ANNOTATION}", "{NOTIFIER}"]\n'
        "[runtime.runtimes.runc]\n"
        f'allowed_annotations = ["{NOTIFIER}"]\n')
    d.start()
    for key in ("annotated", "by_ref"):
        name, _ = probe_images[key]
        d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=name)))
    d.annotated_image = probe_images["annotated"][0]
    d.by_ref_image = probe_images["by_ref"][0]
    yield from serving_image(d, probe_images["plain"], tmp_path)


def start_pod(d, name="pod", handler="builtin", annotations=None, privileged=False) -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name), annotations=annotations or {})
    sc = config.linux.security_context
    sc.privileged = privileged
    sc.namespace_options.pid = api_pb2.CONTAINER
    sc.namespace_options.network = api_pb2.NODE
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def profile(config, kind):
    config.linux.security_context.seccomp.profile_type = kind
    return config


# ---- item 6: RuntimeDefault at least as strict as CRI-O's ---------------------------

@pytest.mark.parametrize("handler", ["builtin", "runc"])
def test_runtime_default_refuses_what_crio_refuses(pdaemon, handler):
    if handler == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    d = pdaemon
    pod = start_pod(d, handler=handler)
    script = STATUS_FIELDS + "; probe vmsplice vsock netlink-audit inet"
    code, out = run_once(d, pod, profile(shell(d, script, name="dflt"), SC.RuntimeDefault))
    assert code == 0, out
    assert status_fields(out)["Seccomp"] == "2", out
    res = probe_results(out)
    assert res["vmsplice"] == EPERM, out         # the filter, before the kernel's EBADF
    assert res["vsock"] == EPERM, out
    assert res["netlink-audit"] == EINVAL, out   # libaudit's "no audit here"
    assert res["inet"] == 0, out
    # unconfined, the same calls reach the kernel
    code, out = run_once(d, pod, profile(shell(d, script, name="open"), SC.Unconfined))
    res = probe_results(out)
    assert res["vmsplice"] == EBADF and res["inet"] == 0, out
    assert res["netlink-audit"] != EINVAL, out
    remove_pod(d, pod)


# ---- item 7: privileged_seccomp_profile ------------------------------------------------

def test_privileged_container_gets_privileged_seccomp_profile(pdaemon):
    d = pdaemon
    pod = start_pod(d, privileged=True)
    config = shell(d, STATUS_FIELDS + "; probe mkdir", name="priv")
    config.linux.security_context.privileged = True
    code, out = run_once(d, pod, config)
    assert code == 0, out
    assert status_fields(out)["Seccomp"] == "2", out
    assert probe_results(out)["mkdir"] == 13, out      # the profile's EACCES
    # the same container not privileged, unconfined: no filter at all
    code, out = run_once(d, pod, profile(shell(d, STATUS_FIELDS + "; probe mkdir",
                                               name="plain"), SC.Unconfined))
    assert status_fields(out)["Seccomp"] == "0" and probe_results(out)["mkdir"] == 0, out
    remove_pod(d, pod)


# ---- item 7: the image annotation ---------------------------------------------------------

def test_image_annotation_profile(pdaemon):
    d = pdaemon
    pod = start_pod(d)

    def annotated(name, kind):
        config = profile(shell(d, STATUS_FIELDS + "; probe mkdir", name=name), kind)
        config.image.image = d.annotated_image
        return config
    # Unconfined (what the annotation stands in for, as in CRI-O): the image's profile
    code, out = run_once(d, pod, annotated("img", SC.Unconfined))
    assert status_fields(out)["Seccomp"] == "2", out
    assert probe_results(out)["mkdir"] == 13, out
    # a profile the request names wins over the image's
    code, out = run_once(d, pod, annotated("dflt", SC.RuntimeDefault))
    assert status_fields(out)["Seccomp"] == "2" and probe_results(out)["mkdir"] == 0, out
    # the image without the annotation: unconfined
    code, out = run_once(d, pod, profile(shell(d, STATUS_FIELDS + "; probe mkdir", name="pl"),
                                         SC.Unconfined))
    assert status_fields(out)["Seccomp"] == "0", out
    remove_pod(d, pod)


def test_image_annotation_naming_an_oci_artifact(pdaemon):
    """CRI-O's form of the value: the profile is pulled from the registry."""
    d = pdaemon
    pod = start_pod(d)
    config = profile(shell(d, STATUS_FIELDS + "; probe mkdir", name="art"), SC.Unconfined)
    config.image.image = d.by_ref_image
    code, out = run_once(d, pod, config)
    assert status_fields(out)["Seccomp"] == "2", out
    assert probe_results(out)["mkdir"] == 13, out
    # a pod annotation naming an artifact that is not there: the create fails, naming both
    missing = d.by_ref_image.rsplit("/", 2)[0] + "/e2e/no-such-artifact:v1"
    pod2 = start_pod(d, name="pod2", annotations={f"{PROFILE_ANNOTATION}/app": missing})
    with pytest.raises(grpc.RpcError) as e:
        create(d, pod2, profile(shell(d, "true", name="app"), SC.Unconfined))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value.details()
    assert f"annotation {PROFILE_ANNOTATION}/app" in e.value.details()
    assert "no-such-artifact" in e.value.details()
    remove_pod(d, pod)
    remove_pod(d, pod2)


def test_image_annotation_needs_allowed_annotations(daemon_factory, probe_images, tmp_path):
    d = daemon_factory().start()           # no allowed_annotations anywhere
    name, _ = probe_images["annotated"]
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=name)))
    d.image_name = name
    d.pod_logs = tmp_path / "pod-logs"
    pod = start_pod(d)
    code, out = run_once(d, pod, profile(shell(d, STATUS_FIELDS + "; probe mkdir"),
                                         SC.Unconfined))
    assert status_fields(out)["Seccomp"] == "0" and probe_results(out)["mkdir"] == 0, out
    assert f"ignoring image annotation {PROFILE_ANNOTATION}" in d.log()
    remove_pod(d, pod)


# ---- item 7: the notifier ----------------------------------------------------------------

def wait_log(d, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return d.log()


@pytest.mark.parametrize("handler", ["builtin", "runc"])
def test_notifier_stop_kills_on_first_blocked_syscall(pdaemon, handler):
    """runc implements listenerPath as we do: the same agent serves it."""
    if handler == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    d = pdaemon
    pod = start_pod(d, handler=handler, annotations={NOTIFIER: "stop"})
    stream, events, _reader = collect_events(d)
    config = profile(shell(d, "echo up; probe inet; sleep 1; probe vmsplice; echo survived; "
                              "sleep 100", name="victim"), SC.RuntimeDefault)
    cid = create(d, pod, config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    st = wait_exited(d, cid, timeout=20)
    assert st.state == api_pb2.CONTAINER_EXITED, st
    assert st.reason == "seccomp killed", st
    assert st.message == "Used forbidden syscalls: vmsplice (1x)", st
    assert st.exit_code == 137, st
    out = log_text(Path(st.log_path))
    assert "up" in out and "inet=0" in out and "survived" not in out, out
    text = wait_log(d, f"seccomp blocked syscall 'vmsplice' in container {cid}")
    assert f"seccomp blocked syscall 'vmsplice' in container {cid}" in text
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            e = events.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append((e.container_id, e.container_event_type))
        if (cid, api_pb2.CONTAINER_STOPPED_EVENT) in seen:
            break
    stream.cancel()
    assert (cid, api_pb2.CONTAINER_STOPPED_EVENT) in seen, seen
    remove_pod(d, pod)
    # the agent's socket goes with the container
    assert not list((d.base / "run" / "seccomp").glob(cid[:16]))


def test_notifier_other_value_logs_and_keeps_running(pdaemon):
    d = pdaemon
    pod = start_pod(d, annotations={NOTIFIER: "log"})
    cid = create(d, pod, profile(shell(d, "sleep 100", name="watched"), SC.RuntimeDefault))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    # an exec'd process hands its own notify fd to the agent too
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["probe", "vmsplice", "vmsplice", "inet"], timeout=10))
    res = probe_results(r.stdout.decode())
    assert res == {"vmsplice": EPERM, "inet": 0}, r
    text = wait_log(d, f"seccomp blocked syscall 'vmsplice' in container {cid}")
    assert text.count(f"seccomp blocked syscall 'vmsplice' in container {cid}") == 2
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    remove_pod(d, pod)


def test_notifier_annotation_needs_allowed_annotations(daemon_factory, probe_images, tmp_path):
    """No handler lists it: the annotation is ignored with a log line."""
    d = daemon_factory().start()
    name, _ = probe_images["plain"]
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=name)))
    d.image_name = name
    d.pod_logs = tmp_path / "pod-logs"
    pod = start_pod(d, annotations={NOTIFIER: "stop"})
    cid = create(d, pod, profile(shell(d, "probe vmsplice; sleep 100", name="free"),
                                 SC.RuntimeDefault))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    time.sleep(1)
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    assert f"ignoring annotation {NOTIFIER} on container {cid}" in d.log()
    remove_pod(d, pod)


def test_notifier_listens_again_after_a_daemon_restart(pdaemon):
    """The init's filter lost its agent with the old daemon; a later exec's
    filter reaches the new one."""
    d = pdaemon
    pod = start_pod(d, annotations={NOTIFIER: "log"})
    cid = create(d, pod, profile(shell(d, "sleep 100", name="kept"), SC.RuntimeDefault))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    d.stop(signal.SIGKILL)
    stale = d.base / "run" / "seccomp" / ("f" * 16)      # a container gone meanwhile
    stale.write_text("")
    d.start()
    assert not stale.exists()
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["probe", "vmsplice"],
                                                   timeout=10))
    assert probe_results(r.stdout.decode()) == {"vmsplice": EPERM}, r
    text = wait_log(d, f"seccomp blocked syscall 'vmsplice' in container {cid}")
    assert f"seccomp blocked syscall 'vmsplice' in container {cid}" in text
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    remove_pod(d, pod)
