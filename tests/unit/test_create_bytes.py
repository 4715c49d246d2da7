"""A container create's outputs, byte for byte: config.json as the manager
writes it and the built-in runtime's launch plan (with its cgroup records),
for a few pod/container configs, against bytes recorded before the create's
Python was made cheaper (the caches in spec/seccomp.py and
linux/cgroups/hierarchy.py, leaf-first cgroup mkdirs).  A change that
alters these bytes on purpose regenerates the file:
    .venv/bin/python -m tests.unit.test_create_bytes > tests/unit/data/create_golden.json
"""
from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from crio_native._proto import api_pb2
from crio_native.linux.cgroups import Hierarchy, plan_cgroups
from crio_native.runtime.builtin.cgroup_records import cgroup_records
from crio_native.runtime.builtin.plan import HostFacts, plan_records
from crio_native.runtime.builtin.records import Record, encode
from crio_native.spec import build_container_spec

from tests.unit.test_spec_support import base_sandbox, config_with, make_inputs

GOLDEN = Path(__file__).parent / "data" / "create_golden.json"
HOST = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=False)
TOKEN = "@TMP@"
RUNTIME_DEFAULT = api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)


def _hybrid() -> list[tuple[Hierarchy, str]]:
    v1 = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
          "name=systemd"]
    out = [(Hierarchy(Path(f"/sys/fs/cgroup/{c.removeprefix('name=')}"), 1, frozenset({c})), "/")
           for c in v1]
    return out + [(Hierarchy(Path("/sys/fs/cgroup/unified"), 2, frozenset()), "/")]


def _v2() -> list[tuple[Hierarchy, str]]:
    ctrls = frozenset({"cpu", "cpuset", "io", "memory", "pids", "hugetlb"})
    return [(Hierarchy(Path("/sys/fs/cgroup"), 2, ctrls), "/")]


def _configs() -> dict[str, tuple[api_pb2.ContainerConfig, list[tuple[Hierarchy, str]]]]:
    limited = config_with(command=["sleep", "3600"],
                          linux__security_context__seccomp=RUNTIME_DEFAULT)
    limited.linux.resources.cpu_shares = 512
    limited.linux.resources.cpu_quota = 50000
    limited.linux.resources.cpu_period = 100000
    limited.linux.resources.memory_limit_in_bytes = 64 << 20
    capped = config_with(args=["-c", "true"], working_dir="/tmp",
                         linux__security_context__seccomp=RUNTIME_DEFAULT,
                         linux__security_context__readonly_rootfs=True,
                         linux__security_context__no_new_privs=True,
                         linux__security_context__capabilities__add_capabilities=["NET_ADMIN"],
                         linux__security_context__capabilities__drop_capabilities=["CHOWN"])
    capped.linux.security_context.run_as_user.value = 1000
    capped.envs.add(key="A", value=b"1")
    return {"base": (config_with(), _hybrid()),
            "limited-hybrid": (limited, _hybrid()),
            "limited-v2": (limited, _v2()),
            "capped-v2": (capped, _v2())}


def _swap(value: Any, tmp: str) -> Any:
    return value.replace(tmp, TOKEN) if isinstance(value, str) else value


def outputs(tmp: Path) -> dict[str, dict[str, str]]:
    """name -> {"config.json": text, "plan": base64 of the plan's bytes},
    with the temporary directory's path written as TOKEN."""
    pod = tmp / "pod"
    (pod / "shm").mkdir(parents=True)
    for name in ("hostname", "hosts", "resolv.conf"):
        (pod / name).write_text("")
    out = {}
    for name, (config, hierarchies) in _configs().items():
        bundle = tmp / name
        for d in ("etc", "tmp", "proc", "dev", "sys"):
            (bundle / "rootfs" / d).mkdir(parents=True)
        inputs = make_inputs(config, rootfs=str(bundle / "rootfs"),
                             sandbox=base_sandbox(directory=str(pod), shm_path=str(pod / "shm"),
                                                  pins={}))
        spec = build_container_spec(inputs).spec
        text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        spec = json.loads(text)
        resources = spec["linux"].get("resources") or {}
        cg = plan_cgroups(spec["linux"]["cgroupsPath"] or "c1", resources,
                          hierarchies=hierarchies, own={"": "/", "cpu": "/"}, root="/",
                          page_sizes=frozenset({"2MB"}))
        records = plan_records(spec, bundle, host=HOST, barrier=str(bundle / "fifo"),
                               cgroups=cg, container_id="c1") + cgroup_records(cg)
        swapped = [Record(r.type, tuple(_swap(f, str(tmp)) for f in r.fields)) for r in records]
        out[name] = {"config.json": text.replace(str(tmp), TOKEN),
                     "plan": base64.b64encode(encode(swapped)).decode()}
    return out


def test_create_outputs_unchanged(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    got = outputs(tmp_path)
    assert sorted(got) == sorted(golden)
    for name in golden:
        assert got[name]["config.json"] == golden[name]["config.json"], name
        assert got[name]["plan"] == golden[name]["plan"], name


def test_create_outputs_repeat(tmp_path):
    """The second create (caches warm) writes what the first did."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = outputs(tmp_path / "a"), outputs(tmp_path / "b")
    assert first == second


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        json.dump(outputs(Path(d)), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
