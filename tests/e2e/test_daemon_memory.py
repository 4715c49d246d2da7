"""The running daemon maps none of the extension modules a default config
does not use until a request needs them (bench daemon_rss measures what
that saves): `cryptography` (the attestation key is made and checked at
start without it), the layer decompressors and PyYAML.  `cryptography`
stays unmapped after pulls without a sigstoreSigned policy and after
started containers (their records are signed through libcrypto)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.attestation.keys import load_public_key
from crio_native.attestation.record import verify_record
from tests.e2e.test_containers import (busybox_image, cdaemon, container_config,  # noqa: F401
                                       create, cstatus, run_pod)
from tests.fixtures.registry import registry  # noqa: F401

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


@pytest.mark.root
def test_pulls_and_started_containers_leave_cryptography_unmapped(cdaemon):  # noqa: F811
    """The pull (no policy file: no sigstoreSigned requirement) and two
    signed attestation records later, `cryptography` is still not mapped;
    the records verify with the `cryptography` verifier in this process."""
    d = cdaemon
    started = []
    for name in ("one", "two"):
        pod = run_pod(d, f"mem-{name}")
        cid = create(d, pod, container_config(d, name=name))
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        started.append(cid)
    assert d.proc is not None
    assert "cryptography" not in mapped(d.proc.pid)
    public = load_public_key(d.base / "root" / "attestation" / "node.pub")
    for cid in started:
        record = cstatus(d, cid, verbose=True).info["attestation"]
        assert json.loads(record)["container"]["id"] == cid
        ok, why = verify_record(record.encode(), public)
        assert ok, why
