"""create -> start -> wait -> delete of a busybox `true` container: the
built-in runtime through the Python API the daemon uses (with and without
its per-container monitor), against runc and crun through their CLIs
(`run`, their own fastest path for the same cycle), on the same bundle in
the same run, taking turns cycle by cycle.  A peer that cannot run here is
skipped with its reason.  Also `unshare -fmpiun --mount-proc true` as a
floor.  On pure cgroup v2: `make bench-v2` (the plain VM)."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from bench.common import ratio, summarize, time_alternating

ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "50"))
BUSYBOX = "/bin/busybox"
PEERS = {"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}

SPEC = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["true"],
                "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True,
                "capabilities": {k: ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
                                 for k in ("bounding", "effective", "permitted")}},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "bench",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "mode=755", "size=65536k"]}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
              "maskedPaths": ["/proc/kcore", "/proc/keys"],
              "readonlyPaths": ["/proc/sys", "/proc/bus"]},
}


def make_bundle(base: Path, cgroups_path: str | None) -> Path:
    bundle = base / f"bundle-{uuid.uuid4().hex[:8]}"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    for d in ("proc", "dev"):
        (bundle / "rootfs" / d).mkdir()
    shutil.copy2(BUSYBOX, bundle / "rootfs" / "bin" / "busybox")
    (bundle / "rootfs" / "bin" / "true").symlink_to("busybox")
    spec = copy.deepcopy(SPEC)
    if cgroups_path:
        spec["linux"]["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def builtin_cycle(root: Path, bundle: Path):
    from crio_native.runtime.builtin.container import BuiltinRuntime

    rt = BuiltinRuntime(root)
    null = os.open(os.devnull, os.O_RDWR)

    def cycle():
        cid = uuid.uuid4().hex[:12]
        rt.create(cid, bundle, stdio=(null, null, null))
        rt.start(cid)
        code = rt.wait(cid, timeout=10)
        rt.delete(cid)
        assert code == 0, code
    return cycle


def builtin_monitored_cycle(root: Path, bundle: Path):
    """The daemon's path: the process launched by its own crio-native-monitor
    (--plan), which records the exit; the caller is not its parent."""
    from crio_native.runtime.builtin.container import BuiltinRuntime
    from crio_native.runtime.handler import MonitorOptions

    rt = BuiltinRuntime(root)
    states = root.parent / f"{root.name}-monitor"

    def cycle():
        cid = uuid.uuid4().hex[:12]
        state_dir = states / cid
        state_dir.mkdir(parents=True)
        rt.create_monitored(cid, bundle, MonitorOptions(state_dir=state_dir, log_path=None))
        rt.start(cid)
        code = rt.wait(cid, timeout=10)
        rt.delete(cid)
        shutil.rmtree(state_dir)
        assert code == 0, code
    return cycle


def cli_cycle(binary: str, root: Path, bundle: Path):
    def cycle():
        cid = uuid.uuid4().hex[:12]
        subprocess.run([binary, "--root", str(root), "run", "--bundle", str(bundle), cid],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return cycle


def peer_problem(binary: str, root: Path, bundle: Path) -> str | None:
    if not os.path.exists(binary):
        return f"{binary} is not installed"
    p = subprocess.run([binary, "--root", str(root), "run", "--bundle", str(bundle), "probe"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    subprocess.run([binary, "--root", str(root), "delete", "--force", "probe"],
                   capture_output=True)
    return None if p.returncode == 0 else p.stderr.strip().splitlines()[-1][:200]


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    base = Path(tempfile.mkdtemp(prefix="crn-bench-oci-"))
    base.chmod(0o755)
    try:
        cg_name = f"crn-bench-{os.getpid()}"
        plain = make_bundle(base, None)
        with_cg = make_bundle(base, cg_name)
        # the peers always make a cgroup: compare like with like
        cycles = {"builtin (cgroupsPath)": builtin_cycle(base / "builtin", with_cg),
                  "builtin (no cgroup)": builtin_cycle(base / "builtin", plain),
                  "builtin + monitor (cgroupsPath)": builtin_monitored_cycle(
                      base / "builtin-mon", with_cg)}
        peers = []
        for name, binary in PEERS.items():
            problem = peer_problem(binary, base / name, with_cg)
            if problem:
                print(f"  {name}: skipped ({problem})")
                continue
            peers.append(name)
            cycles[f"{name} run (cgroupsPath)"] = cli_cycle(binary, base / name, with_cg)
        floor = "unshare -fmpiun --mount-proc true"
        cycles[floor] = lambda: subprocess.run(["unshare", "-fmpiun", "--mount-proc", "true"],
                                               check=True)
        p50 = {label: summarize(label, samples)
               for label, samples in time_alternating(cycles, ITERATIONS).items()}
        builtin, no_cg = p50["builtin (cgroupsPath)"], p50["builtin (no cgroup)"]
        monitored = p50["builtin + monitor (cgroupsPath)"]
        for name in peers:
            peer = p50[f"{name} run (cgroupsPath)"]
            ratio(f"builtin / {name}", builtin, peer)
            ratio(f"builtin without a cgroup / {name}", no_cg, peer)
            ratio(f"builtin + monitor / {name}", monitored, peer)
        ratio("builtin / unshare", builtin, p50[floor])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


BENCHMARK = ("oci_runtime", "create/start/wait/delete of busybox true: builtin vs runc, crun",
             run)
