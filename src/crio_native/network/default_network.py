"""The network a node gets when nobody configured one, as CRI-O's packaging
ships 11-crio-ipv4-bridge.conflist: a bridge (crn0) with host-local addresses
from 10.86.0.0/16, masquerade and hairpin, and portmap for hostPort.  The
daemon sets the pod's lo up itself, so the list has no loopback plugin.

Why these names: CRI-O's bridge is cni0 on 10.85.0.0/16, podman's and
containerd's examples use 10.88.0.0/16 (podman hands out 10.89.x.0/24 and up
for networks made later), flannel also owns cni0 with 10.244.0.0/16, kubeadm's
services sit in 10.96.0.0/12.  10.86.0.0/16 on a bridge of our own name
collides with none of them.  The file sorts after the `10-` configs that
network providers (calico, flannel, weave, kindnet, ...) drop once their pod
runs, so theirs wins as soon as it appears, as with CRI-O's `11-`."""
from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

from crio_native.config.sections import NetworkConfig
from crio_native.logsetup import fields
from crio_native.network.cni_config import CONFIG_SUFFIXES
from crio_native.state.files import atomic_write

log = logging.getLogger(__name__)

DEFAULT_NETWORK_FILE = "11-crio-native-bridge.conflist"
DIR_MODE = 0o755
FILE_MODE = 0o644


def default_conflist() -> bytes:
    """The packaged conflist (package data beside this module)."""
    return resources.files(__package__).joinpath(DEFAULT_NETWORK_FILE).read_bytes()


def has_network_config(directory: Path) -> bool:
    """Whether anything in `directory` looks like a network config, valid or
    not: a broken file is the operator's, and ours would mask it."""
    try:
        return any(p.suffix in CONFIG_SUFFIXES for p in directory.iterdir())
    except FileNotFoundError:
        return False


def install_default_network(network: NetworkConfig) -> Path | None:
    """Put the default conflist into `network.network_dir` when that holds no
    network config at all (making the directory if missing); the path
    installed, or None when there was nothing to do.  Raises OSError when the
    directory cannot be made or written."""
    if not network.install_default_network:
        return None
    directory = Path(network.network_dir)
    if has_network_config(directory):
        return None
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, DIR_MODE)   # whatever the umask: non-root readers (tools) look here
    target = directory / DEFAULT_NETWORK_FILE
    # Written whole and renamed into place: the network watcher's inotify
    # never sees a half-written config.
    atomic_write(target, default_conflist(), mode=FILE_MODE)
    log.info("installed the default CNI network", extra=fields(
        file=str(target), reason=f"no network config in {directory}",
        opt_out="network.install_default_network = false"))
    return target
