"""Running one part of a pod's teardown while another runs.

StopPodSandbox kills the pod's containers and runs CNI DEL.  DEL spends most
of its time waiting on others: the plugins' exec, and the kernel deleting
the pod's veth (an RCU grace period at the RTM_DELLINK, ~10-19 ms here,
bench pod_steps / docs/pods.md "Teardown").  The kill spends its time
waiting for the monitors to record the exits.  Neither needs the other (CNI
asks only that the netns still exists, and it stays pinned until
RemovePodSandbox; CRI-O runs DEL before it stops the containers at all), so
they overlap instead of adding up."""
from __future__ import annotations

import contextvars
import logging
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from crio_native.logsetup import fields

log = logging.getLogger(__name__)


@contextmanager
def alongside(work: Callable[[], None] | None, what: str) -> Iterator[None]:
    """Run `work` in a thread while the body runs; wait for it at the end,
    whatever happened in the body.  An error of `work` is raised after the
    body's own (if the body failed too, the body's error wins and `work`'s is
    logged).  The thread runs in a copy of the caller's context, so steps it
    passes (failpoints, steps.py) land in the caller's trace."""
    if work is None:
        yield
        return
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            failed.append(e)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,),
                              name=f"alongside:{what}", daemon=True)
    thread.start()
    try:
        yield
    except BaseException:
        thread.join()
        for e in failed:
            log.warning("failed alongside another failure", extra=fields(
                step=what, error=str(e)))
        raise
    thread.join()
    if failed:
        raise failed[0]
