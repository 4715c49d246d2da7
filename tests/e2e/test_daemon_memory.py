"""The running daemon maps none of the extension modules a default config
does not use until a request needs them (bench daemon_rss measures what
that saves): `cryptography` (the attestation key is made and checked at
start without it), the layer decompressors and PyYAML."""
from __future__ import annotations

from pathlib import Path

from crio_native._proto import api_pb2

# what /proc/PID/maps shows of each package: its compiled extension
EXTENSIONS = {"cryptography": "/cryptography/hazmat/bindings/",
              "zstandard": "/zstandard/", "isal": "/isal/", "yaml": "/yaml/_yaml"}


def mapped(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name, part in EXTENSIONS.items() if part in maps}


def test_a_fresh_daemon_maps_no_extension_it_does_not_use_yet(daemon):
    daemon.runtime.Version(api_pb2.VersionRequest(), timeout=10)
    daemon.runtime.Status(api_pb2.StatusRequest(), timeout=10)
    assert daemon.proc is not None
    assert mapped(daemon.proc.pid) == set()
    attestation = daemon.base / "root" / "attestation"
    assert (attestation / "node.key").exists() and (attestation / "node.pub").exists()


def test_a_restarted_daemon_keeps_its_node_key_and_still_maps_none(daemon_factory, tmp_path):
    first = daemon_factory(base=tmp_path / "node").start()
    key = (tmp_path / "node" / "root" / "attestation" / "node.key").read_bytes()
    first.stop()
    again = daemon_factory(base=tmp_path / "node").start()
    again.runtime.Status(api_pb2.StatusRequest(), timeout=10)
    assert (tmp_path / "node" / "root" / "attestation" / "node.key").read_bytes() == key
    assert again.proc is not None
    assert mapped(again.proc.pid) == set()
