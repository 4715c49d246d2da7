"""Stopping the processes tests and benchmarks start."""
from __future__ import annotations

import signal
import subprocess


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
