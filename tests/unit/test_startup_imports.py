"""What the daemon leaves unloaded until a request needs it (bench
daemon_rss, docs/service.md "Memory"): the start-up imports and objects,
made in a fresh interpreter, load none of the packages a given config does
not use."""
from __future__ import annotations

import json
import subprocess
import sys

# package -> what loads it later
DEFERRED = {
    "cryptography": "the first signed attestation record (StartContainer)",
    "urllib3": "the first pull",
    "zstandard": "the first pull",
    "isal": "the first pull",
    "tarfile": "the first pull",
    "yaml": "a non-empty [policy] files",
    "celpy": "a non-empty [policy] files",
    "h11": "the first Exec/Attach/PortForward",
    "wsproto": "the first Exec/Attach/PortForward",
    "crio_native.streaming.server": "the first Exec/Attach/PortForward",
    "opentelemetry": "[tracing] enable_tracing",
    "prometheus_client": "[metrics] enable_metrics",
    "hypothesis": "never (tests only)",
    "jeepney": "the first call to systemd (runtime.cgroup_manager = \"systemd\")",
    "grpc": "never: the CRI server is cri/wire (h2); grpc is for clients",
}

START = """
import json, sys
from crio_native.config.sections import Config
from crio_native import daemon
from crio_native.attestation import Attestor
from crio_native.container.manager import ContainerManager
from crio_native.cri.server import build_server
import crio_native.cri.wire.probe
from crio_native.policy import PolicyGate
from crio_native.runtime.registry import HandlerSet
from crio_native.sandbox.manager import SandboxManager
from crio_native.streaming.endpoint import StreamingEndpoint

config = Config(root=sys.argv[1])
PolicyGate.from_files(config.policy.files)
Attestor.for_config(config)
HandlerSet(config).get("")   # the default (built-in) handler, as recovery makes it
endpoint = StreamingEndpoint(None, None).start()
endpoint.stop()
print(json.dumps(sorted(sys.modules)))
"""


def loaded_at_start(root: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", START, root], capture_output=True, text=True,
                         check=True, timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_start_up_loads_none_of_what_a_default_config_does_not_use(tmp_path):
    for attempt in ("first start (the key is made)", "later start (the key is checked)"):
        modules = loaded_at_start(str(tmp_path / "root"))
        loaded = {name: why for name, why in DEFERRED.items()
                  if name in modules or any(m.startswith(name + ".") for m in modules)}
        assert not loaded, f"{attempt}: loaded at start, wanted only at: {loaded}"
    assert (tmp_path / "root" / "attestation" / "node.key").exists()
    assert (tmp_path / "root" / "attestation" / "node.pub").exists()
