"""A crio-native daemon run as a subprocess on a private socket and state
root, with CRI clients for it.  Later e2e scenarios build on this."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from crio_native._proto import api_pb2, api_pb2_grpc
from tests.processes import stop_process

START_TIMEOUT = 30.0


def crio_native_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "crio_native.cli", *args]


class CriEndpoint:
    """CRI clients over `self.channel` (a daemon of ours or a peer's)."""

    channel: grpc.Channel | None

    @property
    def runtime(self) -> api_pb2_grpc.RuntimeServiceStub:
        return api_pb2_grpc.RuntimeServiceStub(self.channel)

    @property
    def images(self) -> api_pb2_grpc.ImageServiceStub:
        return api_pb2_grpc.ImageServiceStub(self.channel)


@dataclass
class Daemon(CriEndpoint):
    base: Path
    extra_args: list[str] = field(default_factory=list)
    listen: Path | None = None
    # Off by default: a test's empty CNI dir stays empty (NetworkReady false,
    # no pod network) unless the test is about the default network.
    default_network: bool = False
    proc: subprocess.Popen | None = None
    channel: grpc.Channel | None = None

    @property
    def socket(self) -> Path:
        return self.listen or self.base / "run" / "crio-native.sock"

    @property
    def network_dir(self) -> Path:
        return self.base / "net.d"

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def prepare(self) -> None:
        """An empty main config and drop-in dir, so the host's /etc is never read;
        a first drop-in turns the default network off unless asked for."""
        drop_ins = self.base / "crio-native.conf.d"
        drop_ins.mkdir(parents=True, exist_ok=True)
        conf = self.base / "crio-native.conf"
        if not conf.exists():
            conf.write_text("")
        opt_out = drop_ins / "00-e2e-harness.conf"
        if self.default_network:
            opt_out.unlink(missing_ok=True)
        else:
            opt_out.write_text("[network]\ninstall_default_network = false\n")

    def args(self) -> list[str]:
        self.prepare()
        return [
            "--config", str(self.base / "crio-native.conf"),
            "--config-dir", str(self.base / "crio-native.conf.d"),
            "--listen", str(self.socket),
            "--root", str(self.base / "root"),
            "--runroot", str(self.base / "run"),
            "--log-dir", str(self.base / "pods"),
            "--cni-config-dir", str(self.network_dir),
            *self.extra_args,
        ]

    def start(self) -> "Daemon":
        self.proc = subprocess.Popen(crio_native_command(*self.args(), "daemon"),
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "ab"))
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()}")
            try:
                self.runtime.Version(api_pb2.VersionRequest(), timeout=1)
                return self
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is None:
            return 0
        try:
            return stop_process(self.proc, sig, timeout, strict=True)
        finally:
            self.proc = None


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(crio_native_command(*args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
