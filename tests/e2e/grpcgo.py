"""The grpc-go client of tests/interop/grpcgo (the kubelet's gRPC library,
dialled as the kubelet's CRI client dials) built once per session and run
with a JSON script of calls; see main.go for the script and its output."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from google.protobuf.message import Message

from crio_native.cri.wire import StatusCode

SOURCE = Path(__file__).resolve().parents[1] / "interop" / "grpcgo"
# Debian's golang-google-grpc-dev (grpc-go 1.33) and what it depends on
GOPATH = Path("/usr/share/gocode")
GRPC_GO = GOPATH / "src" / "google.golang.org" / "grpc"
# the binary and Go's build cache stay between sessions: a rebuild with a
# warm cache takes about a second, a cold one 15-30 s
BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "grpcgo"


def missing() -> str | None:
    """Why the grpc-go client cannot be built here, or None."""
    if shutil.which("go") is None:
        return "needs Go (Debian's golang-go) to build the grpc-go client"
    if not (GRPC_GO / "clientconn.go").exists():
        return f"needs grpc-go's sources in {GRPC_GO} (Debian's golang-google-grpc-dev)"
    return None


def build(out_dir: Path = BUILD_DIR) -> Path:
    """The client binary, (re)built by `go build` (GOPATH mode, no network)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / "crn-grpcgo"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": "",
           "GOCACHE": str(out_dir / "cache"), "CGO_ENABLED": "0"}
    done = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=SOURCE, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"go build of {SOURCE} failed:\n{done.stderr}")
    return binary


def call(method: str, request: Message | bytes = b"", **options: Any) -> dict[str, Any]:
    """One call of a script: `method` is "/runtime.v1.RuntimeService/Version"
    or just "Version" (RuntimeService's); options as main.go's Call."""
    if not method.startswith("/"):
        method = f"/runtime.v1.RuntimeService/{method}"
    data = request if isinstance(request, bytes) else request.SerializeToString()
    return {"method": method, "request": data.hex(), **options}


@dataclass
class Result:
    """A finished run: what each call ended with, its streamed messages, the
    frames counted on the wire."""
    ends: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, list[bytes]] = field(default_factory=dict)
    frames_out: dict[str, int] = field(default_factory=dict)
    frames_in: dict[str, int] = field(default_factory=dict)

    def response(self, i: int) -> bytes:
        return bytes.fromhex(self.ends[i].get("response", ""))

    def status(self, i: int) -> tuple[str, str]:
        """(gRPC's name of the code, as grpcio's StatusCode names it; message)"""
        return StatusCode(self.ends[i]["code"]).name, self.ends[i]["message"]


class Run:
    """A running client: its output lines as they come, then the Result."""

    def __init__(self, binary: Path, socket: Path, calls: list[dict[str, Any]],
                 concurrency: int = 0, authority: str | None = None,
                 subtype: str | None = None):
        args = [str(binary), "-socket", str(socket)]
        if authority:
            args += ["-authority", authority]
        if subtype:
            args += ["-subtype", subtype]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"concurrency": concurrency, "calls": calls}))
        self.proc.stdin.close()
        self.result = Result()
        self.done = False

    def lines(self) -> Iterator[dict[str, Any]]:
        """Each output object, as it comes, recorded in the Result."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            if item.get("done"):
                self.result.frames_out, self.result.frames_in = (item["frames_out"],
                                                                 item["frames_in"])
                self.done = True
            elif "message" in item and "code" not in item:
                self.result.messages.setdefault(item["i"], []).append(
                    bytes.fromhex(item["message"]))
            elif "code" in item or "error" in item:
                self.result.ends[item["i"]] = item
            yield item

    def wait_for(self, predicate) -> dict[str, Any]:
        for item in self.lines():
            if predicate(item):
                return item
        raise AssertionError(f"the grpc-go client ended first: {self.stderr()}")

    def finish(self, timeout: float = 120.0) -> Result:
        for _ in self.lines():
            pass
        rc = self.proc.wait(timeout)
        assert rc == 0 and self.done, f"grpc-go client exited {rc}: {self.stderr()}"
        return self.result

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run(binary: Path, socket: Path, calls: list[dict[str, Any]], **kw: Any) -> Result:
    r = Run(binary, socket, calls, **kw)
    try:
        return r.finish()
    finally:
        r.close()
