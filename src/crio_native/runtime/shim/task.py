"""containerd's shim v2 task service (`containerd.task.v2.Task`) over ttrpc:
one method per call, the request and answer messages from
proto/shim/v2/task.proto."""
from __future__ import annotations

import json
from typing import Any

from google.protobuf import any_pb2, empty_pb2

from crio_native._proto.shim.v2 import task_pb2 as pb
from crio_native.runtime.shim.ttrpc import TtrpcClient, connect

SERVICE = "containerd.task.v2.Task"
# The type URLs containerd's typeurl registry gives the OCI JSON types; the
# shims decode these Any values as JSON.
PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

# The task's status as the OCI state names it.
OCI_STATUS = {pb.UNKNOWN: "unknown", pb.CREATED: "created", pb.RUNNING: "running",
              pb.STOPPED: "stopped", pb.PAUSED: "paused", pb.PAUSING: "running"}


def json_any(type_url: str, doc: dict[str, Any]) -> any_pb2.Any:
    return any_pb2.Any(type_url=type_url, value=json.dumps(doc).encode())


class TaskClient:
    """The task API of one shim.  `timeout` bounds every call but Wait
    (which ends when the process does, or at its own timeout)."""

    def __init__(self, client: TtrpcClient, timeout: float = 30.0):
        self.client = client
        self.timeout = timeout

    @classmethod
    def dial(cls, address: str, timeout: float = 30.0,
             connect_timeout: float = 5.0) -> "TaskClient":
        return cls(connect(address, connect_timeout), timeout)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TaskClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request, response_type=empty_pb2.Empty, timeout=None):
        return self.client.call(SERVICE, method, request, response_type,
                                timeout=timeout if timeout is not None else self.timeout)

    # ---- the task's methods -------------------------------------------------------

    def create(self, task_id: str, bundle: str, *, stdin: str = "", stdout: str = "",
               stderr: str = "", terminal: bool = False,
               timeout: float | None = None) -> pb.CreateTaskResponse:
        return self._call("Create", pb.CreateTaskRequest(
            id=task_id, bundle=bundle, stdin=stdin, stdout=stdout, stderr=stderr,
            terminal=terminal), pb.CreateTaskResponse, timeout)

    def start(self, task_id: str, exec_id: str = "") -> pb.StartResponse:
        return self._call("Start", pb.StartRequest(id=task_id, exec_id=exec_id),
                          pb.StartResponse)

    def state(self, task_id: str, exec_id: str = "") -> pb.StateResponse:
        return self._call("State", pb.StateRequest(id=task_id, exec_id=exec_id),
                          pb.StateResponse)

    def kill(self, task_id: str, signal: int, *, all: bool = False, exec_id: str = "") -> None:
        self._call("Kill", pb.KillRequest(id=task_id, exec_id=exec_id, signal=signal, all=all))

    def delete(self, task_id: str, exec_id: str = "") -> pb.DeleteResponse:
        return self._call("Delete", pb.DeleteRequest(id=task_id, exec_id=exec_id),
                          pb.DeleteResponse)

    def wait(self, task_id: str, exec_id: str = "",
             timeout: float | None = None) -> pb.WaitResponse:
        """Blocks until the process has exited (no timeout by default)."""
        return self.client.call(SERVICE, "Wait", pb.WaitRequest(id=task_id, exec_id=exec_id),
                                pb.WaitResponse, timeout=timeout)

    def exec(self, task_id: str, exec_id: str, process: dict[str, Any], *, stdin: str = "",
             stdout: str = "", stderr: str = "", terminal: bool = False) -> None:
        self._call("Exec", pb.ExecProcessRequest(
            id=task_id, exec_id=exec_id, terminal=terminal, stdin=stdin, stdout=stdout,
            stderr=stderr, spec=json_any(PROCESS_TYPE_URL, process)))

    def resize_pty(self, task_id: str, exec_id: str, width: int, height: int) -> None:
        self._call("ResizePty", pb.ResizePtyRequest(id=task_id, exec_id=exec_id,
                                                    width=width, height=height))

    def close_io(self, task_id: str, exec_id: str = "", stdin: bool = True) -> None:
        self._call("CloseIO", pb.CloseIORequest(id=task_id, exec_id=exec_id, stdin=stdin))

    def stats(self, task_id: str) -> any_pb2.Any:
        """The task's cgroup metrics (runtime/shim/metrics.py decodes them)."""
        return self._call("Stats", pb.StatsRequest(id=task_id), pb.StatsResponse).stats

    def pids(self, task_id: str) -> list[int]:
        return [p.pid for p in self._call("Pids", pb.PidsRequest(id=task_id),
                                          pb.PidsResponse).processes]

    def pause(self, task_id: str) -> None:
        self._call("Pause", pb.PauseRequest(id=task_id))

    def resume(self, task_id: str) -> None:
        self._call("Resume", pb.ResumeRequest(id=task_id))

    def update(self, task_id: str, resources: dict[str, Any]) -> None:
        self._call("Update", pb.UpdateTaskRequest(
            id=task_id, resources=json_any(RESOURCES_TYPE_URL, resources)))

    def connect(self, task_id: str) -> pb.ConnectResponse:
        return self._call("Connect", pb.ConnectRequest(id=task_id), pb.ConnectResponse)

    def shutdown(self, task_id: str, now: bool = False) -> None:
        self._call("Shutdown", pb.ShutdownRequest(id=task_id, now=now))


__all__ = ["OCI_STATUS", "PROCESS_TYPE_URL", "RESOURCES_TYPE_URL", "SERVICE", "TaskClient",
           "json_any"]
