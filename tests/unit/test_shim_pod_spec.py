"""runtime/shim/pod.py: the spec of a pod's sandbox task on a `vm` handler
carries the pod's annotations (kata reads io.katacontainers.* from them
when it boots the VM), with containerd's sandbox annotations on top."""
from __future__ import annotations

from crio_native.config import Config
from crio_native.sandbox.record import SandboxRecord
from crio_native.runtime.shim.pod import sandbox_task_spec
from crio_native.spec import annotations as ann


def test_sandbox_task_spec_carries_the_pods_annotations(tmp_path):
    record = SandboxRecord(
        id="p" * 64, name="web", namespace="default", uid="u-1", attempt=0,
        directory=str(tmp_path), cgroup_parent="",
        annotations={"io.katacontainers.config.hypervisor.default_memory": "512",
                     "team": "a",
                     ann.SANDBOX_ID: "spoofed", ann.CONTAINER_TYPE: "container"})
    spec = sandbox_task_spec(record, Config().runtime.cgroup_manager)
    got = spec["annotations"]
    assert got["io.katacontainers.config.hypervisor.default_memory"] == "512"
    assert got["team"] == "a"
    # ours cannot be overridden by the request
    assert got[ann.CONTAINER_TYPE] == "sandbox"
    assert got[ann.SANDBOX_ID] == record.id
    assert (got[ann.SANDBOX_NAME], got[ann.SANDBOX_NAMESPACE], got[ann.SANDBOX_UID]) == \
        ("web", "default", "u-1")
