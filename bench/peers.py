"""Peers the benchmarks run beside crio-native: Debian's containerd with its
CRI plugin and runc, on a private socket and state root, with images served by
a loopback registry.  Nothing here touches the host's own containerd."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import grpc

from crio_native._proto import api_pb2
from tests.e2e.daemon import CriEndpoint
from tests.processes import stop_process

CONTAINERD = "/usr/bin/containerd"

CONTAINERD_CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  disable_apparmor = true
  enable_selinux = false
  # This host lacks CAP_SYS_RESOURCE: the pause container's -998 would fail.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"""


def cgroup_dirs() -> set[str]:
    out = set()
    for ctl in os.listdir("/sys/fs/cgroup"):
        for dirpath, _dirs, _files in os.walk(os.path.join("/sys/fs/cgroup", ctl)):
            out.add(dirpath)
    return out


def remove_new_cgroups(before: set[str], only: Callable[[str], bool] | None = None) -> None:
    """rmdir the (empty) cgroup directories a peer runtime created as parents
    of its containers and left behind, deepest first; with `only`, just those
    it accepts (so a run beside other users of the host touches only its own)."""
    new = [path for path in cgroup_dirs() - before if only is None or only(path)]
    for path in sorted(new, key=len, reverse=True):
        try:
            os.rmdir(path)
        except OSError as e:
            print(f"  warning: cannot remove cgroup {path}: {e.strerror}")


def containerd_missing() -> str | None:
    if not os.access(CONTAINERD, os.X_OK):
        return f"{CONTAINERD} is not installed (Debian package containerd)"
    return None


class Containerd(CriEndpoint):
    """containerd on a temp socket; stop() ends it and unmounts what it left."""

    def __init__(self, pause_image: str, registry: str, cni_bin: str, cni_conf: str):
        self.base = Path(tempfile.mkdtemp(prefix="crn-bench-containerd-"))
        self.config = self.base / "config.toml"
        self.config.write_text(CONTAINERD_CONFIG.format(
            base=self.base, pause_image=pause_image, registry=registry,
            cni_bin=cni_bin, cni_conf=cni_conf))
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None

    @property
    def socket(self) -> str:
        return str(self.base / "containerd.sock")

    def start(self, timeout: float = 30.0) -> "Containerd":
        log = open(self.base / "containerd.log", "wb")
        self.proc = subprocess.Popen([CONTAINERD, "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.runtime.Version(api_pb2.VersionRequest(), timeout=1)
                return self
            except grpc.RpcError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("containerd did not start: "
                                       + (self.base / "containerd.log").read_text()[-2000:])
                time.sleep(0.1)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None:
            stop_process(self.proc)
        # Snapshots and shm mounts containerd keeps under its root.
        with open("/proc/self/mountinfo") as f:
            mine = [line.split()[4] for line in f if line.split()[4].startswith(str(self.base))]
        for mount_point in sorted(mine, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
