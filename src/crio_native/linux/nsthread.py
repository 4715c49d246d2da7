"""Work inside other namespaces without moving the daemon: net, ipc and uts
membership is per thread, so a fresh thread joins them, runs the work and
ends, taking its membership along."""
from __future__ import annotations

import os
import threading
from typing import Callable, Sequence, TypeVar

from crio_native._native import ns

T = TypeVar("T")


def run_joined(joins: Sequence[tuple[str, str | os.PathLike[str]]], work: Callable[[], T],
               name: str = "ns-worker") -> T:
    """`work()` on a new thread that first joined each (kind, path) of
    `joins` (kind as in ns.NS_FILES: "net", "ipc", "uts"); its result is
    returned and its exception raised here."""
    result: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            for kind, path in joins:
                ns.join(path, ns.NS_FILES[kind])
            result.append(work())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            failure.append(e)

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
