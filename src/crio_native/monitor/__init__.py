"""The daemon's side of the per-container C monitor (crio-native-monitor):
start it, read the exit it records, ask it to reopen its log, attach."""
from .attach import EXIT, STDERR, STDOUT, AttachClient, Frame
from .control import reopen_log, resize
from .exitstatus import ExitStatus, read_exit, wait_exit
from .launch import Monitor, launch_monitor, process_alive
from .paths import monitor_binary

__all__ = [
    "AttachClient", "EXIT", "ExitStatus", "Frame", "Monitor", "STDERR", "STDOUT",
    "launch_monitor", "monitor_binary", "process_alive", "read_exit", "reopen_log",
    "resize", "wait_exit",
]
