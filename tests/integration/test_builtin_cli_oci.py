"""`crio-native-runtime` as a standalone OCI runtime, on the points where
runtime-spec and runc allow more than a CRI runtime needs: absolute
cgroupsPath anywhere, no or joined mount namespaces, every
rootfsPropagation, the hook states, memory.kernelTCP.

runc 1.1.5 (/usr/sbin/runc) is the oracle where it gets the point right;
where it does not, the test says so and checks the spec's behaviour alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from crio_native.linux import cgroups
from crio_native.runtime.cgroup_root import CGROUP_ROOT_ENV

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "crio_native.runtime.builtin.cli"]
RUNC = "/usr/sbin/runc"


def _env(without_cgroup_root: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    if without_cgroup_root:
        env.pop(CGROUP_ROOT_ENV, None)
    return env


class Runtime:
    """One OCI CLI (ours or runc) with its own --root."""

    def __init__(self, name: str, root: Path, env: dict[str, str]):
        self.name, self.root, self.env = name, root, env
        self.binary = CLI if name == "builtin" else [RUNC]
        self.ids: list[str] = []

    def __call__(self, *args, detached=False, check=True):
        out = subprocess.DEVNULL if detached else subprocess.PIPE
        p = subprocess.run([*self.binary, "--root", str(self.root), *map(str, args)],
                           stdout=out, stderr=out, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, env=self.env)
        if check:
            assert p.returncode == 0, f"{self.name} {args}: {p.stderr}"
        return p

    def create(self, bundle, cid, *more):
        self.ids.append(cid)
        return self("create", "--bundle", bundle.path, *more, cid, detached=True)

    def pid(self, cid) -> int:
        return json.loads(self("state", cid).stdout)["pid"]

    def cleanup(self):
        for cid in self.ids:
            self("delete", "--force", cid, check=False)


@pytest.fixture
def runtimes(tmp_path):
    made = []

    def make(name, without_cgroup_root=False):
        if name == "runc" and not os.path.exists(RUNC):
            pytest.skip("runc is not installed")
        r = Runtime(name, tmp_path / f"{name}-root-{len(made)}", _env(without_cgroup_root))
        made.append(r)
        return r
    yield make
    for r in made:
        r.cleanup()


def _mountinfo_root(text: str) -> tuple[str, list[str]]:
    """(mount point, optional fields) of the line whose mount point is /."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[4] == "/":
            return fields[4], fields[6:fields.index("-")]
    raise AssertionError(f"no / in mountinfo:\n{text}")


# ---- linux.cgroupsPath -------------------------------------------------------

def test_absolute_cgroups_path_anywhere_like_runc(runtimes, make_bundle):
    """With no cgroup root configured an absolute cgroupsPath is taken from
    each hierarchy's root, wherever that is relative to our own cgroup (the
    memory one here is /process_api/...): runc's rule."""
    seen = {}
    for name in ("runc", "builtin"):
        rt = runtimes(name, without_cgroup_root=True)
        group = f"/crn-abs-{name}-{uuid.uuid4().hex[:8]}"

        def edit(spec, group=group):
            spec["linux"]["cgroupsPath"] = group
            spec["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
        rt.create(make_bundle(["sleep", "60"], edit), "abs")
        own = dict(line.split(":", 2)[1:] for line in
                   Path(f"/proc/{rt.pid('abs')}/cgroup").read_text().splitlines())
        seen[name] = {k: v.replace(group, "<group>") for k, v in own.items()}
        for h, mount_root in cgroups.host_hierarchies():
            if "memory" in h.controllers:
                assert (h.mountpoint / group.lstrip("/") /
                        "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        rt("delete", "--force", "abs")
        for h, _root in cgroups.host_hierarchies():
            d = h.mountpoint / group.lstrip("/")
            if d.is_dir():
                d.rmdir()        # runc leaves its group behind in v1 hierarchies
    assert seen["builtin"] == seen["runc"]
    assert any(v == "<group>" for v in seen["builtin"].values())


# ---- mount namespaces ----------------------------------------------------------

def _no_mount_namespace(spec):
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                   if n["type"] != "mount"]
    spec["mounts"] = []
    spec["root"]["readonly"] = False
    for key in ("maskedPaths", "readonlyPaths"):
        spec["linux"].pop(key)


def test_no_mount_namespace_runs_in_the_runtimes(runtimes, make_bundle):
    """No `mount` in linux.namespaces: the process is in our own mount
    namespace, chrooted into root.path, and nothing is mounted on the host.
    (runc 1.1.5 is no oracle: it binds the rootfs onto itself in the host's
    namespace, leaves that mount behind, and then fails for want of /proc.)"""
    rt = runtimes("builtin")
    b = make_bundle(["sleep", "60"], _no_mount_namespace)
    (b.rootfs / "marker").write_text("mine\n")
    before = Path("/proc/self/mountinfo").read_text()
    rt.create(b, "nomnt")
    rt("start", "nomnt")
    pid = rt.pid("nomnt")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{pid}/root") == str(b.rootfs)
    assert Path(f"/proc/{pid}/root/marker").read_text() == "mine\n"
    assert os.readlink(f"/proc/{pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    assert Path("/proc/self/mountinfo").read_text() == before
    rt("delete", "--force", "nomnt")


@pytest.mark.parametrize("field,edit", [
    ("mounts", lambda s: s.update(mounts=[{"destination": "/proc", "type": "proc",
                                           "source": "proc"}])),
    ("linux.maskedPaths", lambda s: s["linux"].update(maskedPaths=["/proc/kcore"])),
    ("root.readonly", lambda s: s["root"].update(readonly=True)),
    ("linux.rootfsPropagation", lambda s: s["linux"].update(rootfsPropagation="shared")),
])
def test_no_mount_namespace_refuses_what_would_mount(runtimes, make_bundle, field, edit):
    """What would mount something is refused, naming the field, rather than
    done in a namespace the host lives in."""
    rt = runtimes("builtin")

    def both(spec):
        _no_mount_namespace(spec)
        edit(spec)
    before = Path("/proc/self/mountinfo").read_text()
    p = rt("create", "--bundle", make_bundle(["true"], both).path, "refused", check=False)
    assert p.returncode == 1
    assert f"config.json: {field}: needs a mount namespace of the container's own" in p.stderr
    assert Path("/proc/self/mountinfo").read_text() == before


def test_join_mount_and_uts_namespaces_by_path(runtimes, make_bundle):
    """A `path` joins that namespace: the second container sees the first
    one's root (its mount namespace as it is: nothing mounted in it) and
    hostname.  (runc 1.1.5 would set its own rootfs up inside the joined
    namespace, pivot_root included, so it is no oracle for this.)"""
    rt = runtimes("builtin")
    first = make_bundle(["sleep", "60"])
    (first.rootfs / "marker").write_text("first\n")
    rt.create(first, "first")
    rt("start", "first")
    pid = rt.pid("first")
    mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()

    def edit(spec):
        spec["linux"]["namespaces"] = [
            {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
            {"type": "mount", "path": f"/proc/{pid}/ns/mnt"},
            {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]
        spec["mounts"] = []
        spec.pop("hostname")
        spec["root"]["readonly"] = False
        for key in ("maskedPaths", "readonlyPaths"):
            spec["linux"].pop(key)
    second = make_bundle(["sh", "-c", "cat /marker; hostname; readlink /proc/1/ns/mnt"], edit)
    p = rt("run", "--bundle", second.path, "second")
    lines = p.stdout.splitlines()
    assert lines[:2] == ["first", "crn"]
    assert Path(f"/proc/{pid}/mountinfo").read_text() == mountinfo


# ---- rootfsPropagation ---------------------------------------------------------

@pytest.fixture
def shared_dir(tmp_path):
    """A directory that is a shared mount of its own on the host, so that a
    rootfs below it has a peer group to be a slave of."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


@pytest.mark.parametrize("propagation,expect", [
    ("shared", "shared:"), ("slave", "master:"), ("private", None),
    ("unbindable", "unbindable")])
def test_rootfs_propagation_is_what_the_container_sees(runtimes, make_bundle, shared_dir,
                                                        propagation, expect):
    """runtime-spec: rootfsPropagation sets the rootfs's propagation, so the
    container's own / shows it in /proc/self/mountinfo.  runc 1.1.5 shows
    nothing for shared or slave (it sets it on the tree before binding the
    rootfs from a private parent) and fails unbindable with EINVAL, so the
    spec is the oracle here."""
    rt = runtimes("builtin")

    def edit(spec):
        spec["linux"]["rootfsPropagation"] = propagation
    b = make_bundle(["cat", "/proc/self/mountinfo"], edit, where=shared_dir)
    p = rt("run", "--bundle", b.path, f"prop-{propagation}")
    _point, optional = _mountinfo_root(p.stdout)
    if expect is None:
        assert optional == [], p.stdout
    else:
        assert any(f.startswith(expect) for f in optional), p.stdout
        assert len(optional) == 1, p.stdout


# ---- hooks -----------------------------------------------------------------------

def test_hook_states_and_failing_post_hooks(runtimes, make_bundle, tmp_path):
    """Each hook gets the state its lifecycle step has (runtime.md): the
    create hooks run after the environment is made (step 2) and before the
    program, so "created" with the pid the runtime sees; poststart
    "running"; poststop "stopped".  A failing poststart or poststop hook is
    a warning: the later hooks run and the operation succeeds.  (runc 1.1.5
    sends "creating", then "created" to poststart, and fails `run` on a
    failing poststart hook.)"""
    rt = runtimes("builtin")
    out = tmp_path / "hooks"
    out.mkdir()
    kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")

    def dump(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{name}.json"]}

    def edit(spec):
        spec["hooks"] = {k: [dump(k)] for k in kinds}
        for k in ("poststart", "poststop"):
            spec["hooks"][k] += [{"path": "/bin/false"}, dump(f"{k}-after")]
    rt.create(make_bundle(["sleep", "60"], edit), "hk")
    pid = rt.pid("hk")
    for k in ("prestart", "createRuntime", "createContainer"):
        doc = json.loads((out / f"{k}.json").read_text())
        assert (doc["status"], doc["pid"]) == ("created", pid), k
    p = rt("start", "hk")
    assert "poststart hook #1 (/bin/false): exit status 1" in p.stderr
    assert json.loads((out / "poststart.json").read_text())["status"] == "running"
    assert json.loads((out / "poststart-after.json").read_text())["status"] == "running"
    assert json.loads(rt("state", "hk").stdout)["status"] == "running"
    p = rt("delete", "--force", "hk")
    assert "poststop hook #1 (/bin/false): exit status 1" in p.stderr
    for k in ("poststop", "poststop-after"):
        assert json.loads((out / f"{k}.json").read_text())["status"] == "stopped"
    assert rt("state", "hk", check=False).returncode == 1


def test_pid_file_is_written_before_create_returns(runtimes, make_bundle, tmp_path):
    rt = runtimes("builtin")
    pid_file = tmp_path / "pid"
    rt.create(make_bundle(["sleep", "60"]), "pf", "--pid-file", pid_file)
    assert int(pid_file.read_text()) == rt.pid("pf")
    assert json.loads(rt("state", "pf").stdout)["status"] == "created"


# ---- memory.kernelTCP ------------------------------------------------------------

def _memory_v1_dir(group: str) -> Path | None:
    for h, _root in cgroups.host_hierarchies():
        if h.version == 1 and "memory" in h.controllers:
            return h.mountpoint / group.lstrip("/")
    return None


def test_kernel_tcp_limit_is_written(runtimes, make_bundle, cgroups_path):
    """linux.resources.memory.kernelTCP goes to v1's
    memory.kmem.tcp.limit_in_bytes.  runc 1.1.5 leaves that file at its
    unlimited default (it dropped kernel memory limits), so it is no oracle:
    the limit asked for is."""
    d = _memory_v1_dir("")
    if d is None or not (d / "memory.kmem.tcp.limit_in_bytes").exists():
        pytest.skip("no v1 memory hierarchy with memory.kmem.tcp (cgroup v2 has no "
                    "kernelTCP limit; runc's v2 driver ignores it too)")
    rt = runtimes("builtin")
    path = cgroups_path(f"crn-ktcp-{os.getpid()}")

    def edit(spec):
        spec["linux"]["cgroupsPath"] = path
        spec["linux"]["resources"] = {"memory": {"limit": 256 << 20, "kernelTCP": 16 << 20}}
    rt.create(make_bundle(["sleep", "60"], edit), "ktcp")
    own = dict(line.split(":", 2)[1:] for line in
               Path(f"/proc/{rt.pid('ktcp')}/cgroup").read_text().splitlines())
    group = _memory_v1_dir(own["memory"])
    assert int((group / "memory.kmem.tcp.limit_in_bytes").read_text()) == 16 << 20
    assert int((group / "memory.limit_in_bytes").read_text()) == 256 << 20


def test_start_without_process_fails_at_start_not_create(runtimes, make_bundle):
    """runtime-spec config.md: `process` is REQUIRED when start is called,
    so create succeeds without it and start fails, naming it; delete then
    removes the waiting process.  (runc 1.1.5 refuses at create: "process
    property must not be empty".)"""
    rt = runtimes("builtin")

    def edit(spec):
        del spec["process"]
    rt.create(make_bundle(None, edit), "np")
    state = json.loads(rt("state", "np").stdout)
    assert state["status"] == "created" and state["pid"] > 0
    p = rt("start", "np", check=False)
    assert p.returncode == 1
    assert "config.json: process: not set, and start needs it" in p.stderr
    assert json.loads(rt("state", "np").stdout)["status"] == "created"
    rt("delete", "--force", "np")
    assert not Path(f"/proc/{state['pid']}").exists() or \
        Path(f"/proc/{state['pid']}/stat").read_text().split()[2] == "Z"
    assert rt("state", "np", check=False).returncode == 1
