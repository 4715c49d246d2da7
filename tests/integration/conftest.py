"""Fixtures for real containers: a busybox rootfs per test, OCI bundles built
from a runc-like base spec, and runners that run one bundle with the built-in
runtime or with an OCI CLI (runc, crun) so results can be compared."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from crio_native.linux import cgroups
from crio_native.runtime.builtin.container import BuiltinRuntime
from crio_native.runtime.cgroup_root import CGROUP_ROOT_ENV

BUSYBOX = "/bin/busybox"
RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"

BASE_SPEC = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["true"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                         for k in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "crn",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}


def make_rootfs(path: Path) -> Path:
    """A busybox rootfs: the static binary (hard-linked when possible) and
    one symlink per applet."""
    bindir = path / "bin"
    bindir.mkdir(parents=True)
    try:
        os.link(BUSYBOX, bindir / "busybox")
    except OSError:
        shutil.copy2(BUSYBOX, bindir / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bindir / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (path / d).mkdir()
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\n")
    return path


@dataclass
class Bundle:
    path: Path
    spec: dict

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def write(self) -> "Bundle":
        (self.path / "config.json").write_text(json.dumps(self.spec, indent=1))
        return self


@pytest.fixture
def rt(tmp_path):
    """A built-in runtime with its own state root; whatever a test left is
    force-deleted at teardown."""
    runtime = BuiltinRuntime(tmp_path / "state")
    yield runtime
    for cid in runtime.list():
        runtime.delete(cid, force=True)


@pytest.fixture
def make_bundle(tmp_path) -> Callable[..., Bundle]:
    """make_bundle(args=[...], edit=callable(spec)) -> a written bundle with
    its own busybox rootfs."""
    count = [0]

    def make(args: list[str] | None = None, edit: Callable[[dict], None] | None = None,
             where: Path | None = None) -> Bundle:
        count[0] += 1
        path = (where or tmp_path) / f"bundle{count[0]}"
        path.mkdir()
        make_rootfs(path / "rootfs")
        spec = copy.deepcopy(BASE_SPEC)
        if args is not None:
            spec["process"]["args"] = args
        if edit is not None:
            edit(spec)
        return Bundle(path, spec).write()

    return make


@pytest.fixture
def traversable_tmp():
    """A temp dir every uid can traverse (pytest's own is 0700): the mapped
    root of a user namespace has to reach the rootfs through it."""
    path = Path(tempfile.mkdtemp(prefix="crn-userns-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Result:
    code: int
    out: str
    err: str


class BuiltinRunner:
    name = "builtin"

    def __init__(self, root: Path):
        self.runtime = BuiltinRuntime(root)

    def run(self, bundle: Bundle, cid: str | None = None) -> Result:
        cid = cid or f"t-{uuid.uuid4().hex[:12]}"
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "rb") as null:
            self.runtime.create(cid, bundle.path, stdio=(null.fileno(), out.fileno(), err.fileno()))
            try:
                self.runtime.start(cid)
                code = self.runtime.wait(cid, timeout=30)
            finally:
                self.runtime.delete(cid, force=True)
            out.seek(0)
            err.seek(0)
            return Result(code, out.read().decode(), err.read().decode())


def shared_cgroups_path(name: str) -> str:
    """A cgroupsPath that builtin, runc and crun all resolve to the same
    group: absolute, below the cgroup root, wherever every hierarchy has one
    root (the root from the environment, else our own cgroup when it is the
    same path in every hierarchy).  runc takes a relative path below the
    *parent* of its own v2 cgroup and crun below the hierarchy's root, so
    relative paths would differ there.  On a hybrid host whose hierarchies
    put us in different cgroups the name stays relative: runc's v1 driver
    and ours both place it below the own cgroup of each hierarchy."""
    roots = {os.environ[CGROUP_ROOT_ENV]} if os.environ.get(CGROUP_ROOT_ENV) \
        else set(cgroups.own_cgroups().values())
    if len(roots) != 1:
        return name
    return f"{roots.pop().rstrip('/')}/{name}"


@pytest.fixture
def cgroups_path() -> Callable[[str], str]:
    """cgroups_path(name) -> a cgroupsPath all three runtimes place alike."""
    return shared_cgroups_path


class CliRunner:
    """runc or crun through its command line, with its own --root.  The
    cgroup goes below the cgroup root, at the same place builtin puts it."""

    def __init__(self, name: str, binary: str, root: Path):
        self.name, self.binary, self.root = name, binary, root

    def run(self, bundle: Bundle, cid: str | None = None) -> Result:
        cid = cid or f"t-{uuid.uuid4().hex[:12]}"
        spec = copy.deepcopy(bundle.spec)
        spec.setdefault("linux", {}).setdefault("cgroupsPath",
                                                 shared_cgroups_path(f"crn-test-{cid}"))
        cfg = bundle.path / "config.json"
        original = cfg.read_text()
        cfg.write_text(json.dumps(spec))
        try:
            p = subprocess.run([self.binary, "--root", str(self.root), "run", "--bundle",
                                str(bundle.path), cid], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
        finally:
            subprocess.run([self.binary, "--root", str(self.root), "delete", "--force", cid],
                           capture_output=True)
            cfg.write_text(original)
        return Result(p.returncode, p.stdout, p.stderr)


def _cli_usable(runner: CliRunner, tmp: Path) -> str | None:
    """Why this CLI cannot run a trivial container here, or None."""
    if not os.path.exists(runner.binary):
        return f"{runner.binary} is not installed"
    bundle_dir = tmp / f"probe-{runner.name}"
    bundle_dir.mkdir()
    make_rootfs(bundle_dir / "rootfs")
    bundle = Bundle(bundle_dir, copy.deepcopy(BASE_SPEC)).write()
    r = runner.run(bundle)
    if r.code != 0:
        return f"{runner.name} cannot run a trivial container on this host: {r.err.strip()[:300]}"
    return None


@pytest.fixture(scope="session")
def runtime_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime-root")


@pytest.fixture(scope="session")
def builtin(runtime_root) -> BuiltinRunner:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return BuiltinRunner(runtime_root / "builtin")


_OCI_SKIPS: dict[str, str | None] = {}


@pytest.fixture(scope="session", params=["runc", "crun"])
def oracle(request, runtime_root, tmp_path_factory) -> CliRunner:
    """The reference runtime a builtin result is compared with."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    binary = RUNC if request.param == "runc" else CRUN
    runner = CliRunner(request.param, binary, runtime_root / request.param)
    if request.param not in _OCI_SKIPS:
        _OCI_SKIPS[request.param] = _cli_usable(runner, tmp_path_factory.mktemp("probe"))
    reason = _OCI_SKIPS[request.param]
    if reason:
        pytest.skip(reason)
    return runner
