"""Run a test body in a forked child, so namespace and mount changes made by
the native calls never touch the test runner itself."""
from __future__ import annotations

import os
import pickle
import traceback
from typing import Any, Callable

from crio_native._native import ns


def run_in_child(body: Callable[[], Any], new_mount_ns: bool = True) -> Any:
    """Fork; in the child optionally unshare a private mount namespace, run
    `body` and send back its result, or re-raise its exception here."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(read_fd)
        try:
            if new_mount_ns:
                ns.unshare(ns.CLONE_NEWNS)
                # Keep mounts made in the child from propagating to the host.
                os.system("mount --make-rprivate / 2>/dev/null")
            payload = ("ok", body())
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            payload = ("err", (e, traceback.format_exc()))
        try:
            data = pickle.dumps(payload)
        except Exception as e:  # noqa: BLE001
            data = pickle.dumps(("err", (RuntimeError(repr(e)), traceback.format_exc())))
        with os.fdopen(write_fd, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "forked child died"
    kind, value = pickle.loads(data)
    if kind == "err":
        exc, tb = value
        raise exc from RuntimeError(f"in forked child:\n{tb}")
    return value
