"""Stopping the processes tests and benchmarks start."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0,
                 strict: bool = False) -> int:
    """Signal `proc` (if still running) and reap it; SIGKILL it after `timeout`.
    With `strict`, a process that needed the SIGKILL is an error the caller sees."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        if strict:
            raise
        return proc.returncode


def live_descendants() -> set[str]:
    """"PID (name)" of each live (not zombie) process below this one; with
    the subreaper bit the suite sets, orphans are reparented here, so a
    process a test or a killed daemon left behind is counted too."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
            names[int(entry)] = name
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(f"{child} ({names[child]})")
            todo.append(child)
    return found
