"""A real CNI setup for pod tests: Debian's bridge + host-local + portmap
plugins on a private bridge and subnet, torn down (bridge link included,
which the bridge plugin leaves behind by design) after the test."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

PLUGIN_DIR = "/usr/lib/cni"
BRIDGE = "crntest0"
SUBNET_PREFIX = "10.231.7"


def bridge_conflist(ipam_dir: Path, extra_plugins: list[dict] | None = None) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "crn-e2e",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": f"{SUBNET_PREFIX}.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            *(extra_plugins or []),
        ],
    }


def write_network(network_dir: Path, ipam_dir: Path, extra_plugins=None) -> Path:
    network_dir.mkdir(parents=True, exist_ok=True)
    path = network_dir / "10-crn-e2e.conflist"
    path.write_text(json.dumps(bridge_conflist(ipam_dir, extra_plugins)))
    return path


def reserved_ips(ipam_dir: Path) -> list[str]:
    d = ipam_dir / "crn-e2e"
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit() and "." in p.name
                  and not p.name.startswith("last_reserved"))


def delete_bridge() -> None:
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def in_netns(pin: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={pin}", *argv], capture_output=True, text=True,
                          timeout=timeout)
