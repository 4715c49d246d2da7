"""Where the monitor's binary and its files in a state dir are."""
from __future__ import annotations

import os
from pathlib import Path

import crio_native

from .protocol import ATTACH_SOCKET_NAME

MONITOR_PID_FILE = "monitor.pid"
CONTAINER_PID_FILE = "pid"
EXIT_FILE = "exit"


def monitor_binary() -> Path:
    """The crio-native-monitor executable built into the package."""
    return Path(crio_native.__file__).parent / "_bin" / "crio-native-monitor"


def launcher_binary() -> Path:
    """The crio-native-launch executable (src/_native/launcher.h): the
    built-in runtime clones through it instead of forking its caller."""
    return Path(crio_native.__file__).parent / "_bin" / "crio-native-launch"


def pause_binary() -> Path:
    """The crio-native-pause executable: the pod infra process."""
    return Path(crio_native.__file__).parent / "_bin" / "crio-native-pause"


def shim_relay_binary() -> Path:
    """The crio-native-shim-relay executable (src/_native/shimrelay/): what
    the monitor of a vm-handler container runs in place of the container."""
    return Path(crio_native.__file__).parent / "_bin" / "crio-native-shim-relay"


def attach_socket(state_dir: str | os.PathLike) -> Path:
    return Path(state_dir) / ATTACH_SOCKET_NAME
