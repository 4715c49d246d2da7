"""The final-spec policy gate and attestation records over real gRPC on the
built-in handler (issue 20, items 4 and 5): a deny rule refuses a container
with CAP_SYS_ADMIN naming the rule and leaves nothing behind; an audit rule
lets it through and its counter moves on the metrics endpoint; a policy file
that does not compile stops the start naming file and rule; a started
container's verbose status carries a signed record that `crio-native verify`
accepts, and refuses once one byte of it is changed."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.conftest import own_cgroup_dirs
from tests.e2e.daemon import run_cli
from tests.e2e.test_containers import (busybox_image, container_config, create,  # noqa: F401
                                       cstatus, rpc_code, run_pod, serving_image)
from tests.ports import free_port
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

COUNTER = "container_runtime_crio_native_policy_decisions_total"


def policy_yaml(action: str) -> str:
    return ("- name: no-cap-sys-admin\n"
            f"  action: {action}\n"
            "  message: CAP_SYS_ADMIN is not for this node\n"
            "  expression: >-\n"
            "    has(spec.process.capabilities) &&\n"
            "    \"CAP_SYS_ADMIN\" in spec.process.capabilities.bounding\n"
            "- name: web-only-audit\n"
            "  action: audit\n"
            "  expression: pod.name == \"never-this-name\"\n")


def policy_daemon(daemon_factory, tmp_path, action: str, metrics_port: int = 0):
    d = daemon_factory()
    policy_dir = tmp_path / f"policy-{action}"
    policy_dir.mkdir()
    (policy_dir / "10-caps.yaml").write_text(policy_yaml(action))
    drop_ins = d.base / "crio-native.conf.d"
    drop_ins.mkdir(parents=True, exist_ok=True)
    conf = f'[policy]\nfiles = ["{policy_dir}/*.yaml"]\n'
    if metrics_port:
        conf += f"[metrics]\nenable_metrics = true\nmetrics_port = {metrics_port}\n"
    (drop_ins / "50-policy.conf").write_text(conf)
    return d


def sys_admin_config(d, name="admin") -> api_pb2.ContainerConfig:
    config = container_config(d, name=name)
    config.linux.security_context.capabilities.add_capabilities.append("CAP_SYS_ADMIN")
    return config


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def counter(text: str, rule: str, action: str) -> float:
    pattern = re.compile(rf'^{COUNTER}{{(.*)}} (\S+)$', re.M)
    for labels, value in pattern.findall(text):
        if f'rule="{rule}"' in labels and f'action="{action}"' in labels:
            return float(value)
    return 0.0


def leftovers(d) -> dict[str, set[str]]:
    """What a container could leave: files in the state dirs, mounts under
    the daemon's base, cgroups below the test run's own."""
    files = set()
    for top in (d.base / "root" / "containers", d.base / "run" / "containers"):
        if top.is_dir():
            files.update(str(p) for p in top.rglob("*"))
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f if line.split()[4].startswith(str(d.base))}
    cgroups = {dirpath for top in own_cgroup_dirs() for dirpath, _, _ in os.walk(top)}
    return {"files": files, "mounts": mounts, "cgroups": cgroups}


# ---- the policy gate ------------------------------------------------------------------

@pytest.fixture
def deny_daemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    d = policy_daemon(daemon_factory, tmp_path, "deny", metrics_port=free_port())
    yield from serving_image(d.start(), busybox_image, tmp_path)


def test_a_deny_rule_refuses_cap_sys_admin_naming_the_rule_and_leaves_nothing(deny_daemon):
    d = deny_daemon
    pod = run_pod(d, "gate")
    before = leftovers(d)
    code, details = rpc_code(lambda: create(d, pod, sys_admin_config(d)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "denied by policy rule 'no-cap-sys-admin': CAP_SYS_ADMIN is not for this node" \
        in details
    assert d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers == []
    after = leftovers(d)
    assert {k: after[k] - before[k] for k in after} == {k: set() for k in after}
    # the same pod still runs what the rule allows
    allowed = create(d, pod, container_config(d, name="plain"))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=allowed))
    assert cstatus(d, allowed).status.state == api_pb2.CONTAINER_RUNNING


@pytest.fixture
def audit_daemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    port = free_port()
    d = policy_daemon(daemon_factory, tmp_path, "audit", metrics_port=port)
    d.metrics_port = port
    yield from serving_image(d.start(), busybox_image, tmp_path)


def test_an_audit_rule_lets_the_container_through_and_counts_it(audit_daemon):
    d = audit_daemon
    assert counter(scrape(d.metrics_port), "no-cap-sys-admin", "audit") == 0
    pod = run_pod(d, "audit")
    cid = create(d, pod, sys_admin_config(d))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    text = scrape(d.metrics_port)
    assert counter(text, "no-cap-sys-admin", "audit") == 1
    assert counter(text, "web-only-audit", "audit") == 0
    create(d, pod, sys_admin_config(d, name="admin2"))
    assert counter(scrape(d.metrics_port), "no-cap-sys-admin", "audit") == 2
    assert "policy audit: CAP_SYS_ADMIN is not for this node" in d.log()


def test_a_policy_that_does_not_compile_stops_the_start_naming_file_and_rule(daemon_factory,
                                                                           tmp_path):
    d = daemon_factory()
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: typo-rule\n  action: deny\n  expression: spec.process.caps &&& 1\n")
    drop_ins = d.base / "crio-native.conf.d"
    drop_ins.mkdir(parents=True)
    (drop_ins / "50-policy.conf").write_text(f'[policy]\nfiles = ["{bad}"]\n')
    result = run_cli(*d.args(), "daemon", timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{bad}: policy.files: rule 'typo-rule': expression does not parse" in result.stderr
    assert not d.socket.exists()


def test_sighup_compiles_the_policy_again_and_keeps_it_when_broken(deny_daemon, tmp_path):
    d = deny_daemon
    policy = tmp_path / "policy-deny" / "10-caps.yaml"
    pod = run_pod(d, "reload")
    policy.write_text(policy_yaml("audit"))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "policy reloaded" not in d.log():
        assert time.monotonic() < deadline, d.log()
        time.sleep(0.05)
    create(d, pod, sys_admin_config(d))                    # audit now: let through
    policy.write_text("- name: broken\n  action: deny\n  expression: nope(\n")
    d.proc.send_signal(signal.SIGHUP)
    while "configuration reload failed" not in d.log():
        assert time.monotonic() < deadline, d.log()
        time.sleep(0.05)
    create(d, pod, sys_admin_config(d, name="admin2"))     # the audit rules are kept


# ---- attestation -------------------------------------------------------------------------

@pytest.fixture
def plain_daemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    yield from serving_image(daemon_factory().start(), busybox_image, tmp_path)


def verify(d, path: Path):
    return run_cli("verify", "--config", str(d.base / "crio-native.conf"),
                   "--config-dir", str(d.base / "crio-native.conf.d"),
                   "--root", str(d.base / "root"), str(path))


def test_a_started_container_carries_a_record_that_verifies_until_changed(plain_daemon,
                                                                         tmp_path):
    d = plain_daemon
    pod = run_pod(d, "attest")
    cid = create(d, pod, container_config(d, name="signed"))
    assert "attestation" not in cstatus(d, cid, verbose=True).info   # created, not started
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    info = cstatus(d, cid, verbose=True).info
    record = json.loads(info["attestation"])
    spec = json.loads(info["info"])["runtimeSpec"]
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record["spec_digest"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert record["container"]["id"] == cid and record["handler"] == "builtin"
    assert record["image"]["signature"] == "unverified"
    assert record["image"]["digest"].startswith("sha256:")
    assert record["capabilities"]["bounding"] == spec["process"]["capabilities"]["bounding"]

    path = tmp_path / "record.json"
    path.write_text(info["attestation"])
    ok = verify(d, path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"valid: container {cid}")

    data = path.read_bytes()
    i = data.index(b'"spec_digest":"sha256:') + len(b'"spec_digest":"sha256:')
    path.write_bytes(data[:i] + (b"0" if data[i:i + 1] != b"0" else b"1") + data[i + 1:])
    bad = verify(d, path)
    assert bad.returncode == 1
    assert "invalid: signature does not verify" in bad.stderr

    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert not list((d.base / "root" / "containers").glob("*.attestation"))
