"""kill -9 of a process in the middle of a pull (docs/images.md, "On disk";
DESIGN.md invariant 3): a layer is visible under layers/ only complete and
verified, whatever moment the kill lands on; the next open of the store
clears the staging debris and the layers no image names, and a new pull
gives the whole image."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from crio_native.config.sections import Config
from crio_native.image.service import ImageService
from tests.fixtures.oci_builder import BuiltImage, ImageBuilder, Pusher, file
from tests.fixtures.proxy import FlakyProxy
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

LAYERS = 3
FILES = 4
FILE_BYTES = 3 * 1024 * 1024

PULLER = textwrap.dedent("""
    import sys
    from crio_native.config.sections import Config
    from crio_native.image.service import ImageService
    root, name = sys.argv[1:]
    config = Config(root=root + "/root")
    config.image.registries_conf = root + "/none"
    config.image.registries_conf_dir = root + "/none.d"
    config.image.signature_policy = root + "/none.json"
    config.image.pull_progress_timeout = "5m"
    ImageService(config).pull(name)
""")


def layer_files(layer: int) -> dict[str, bytes]:
    """Distinct, partly compressible contents per layer and file."""
    return {f"data/{layer}/{i}": (bytes([layer * FILES + i]) * 1024 +
                                  os.urandom(1024)) * (FILE_BYTES // 2048)
            for i in range(FILES)}


@dataclass
class Pushed:
    built: BuiltImage
    expected: dict[int, dict[str, bytes]]   # image layer index -> file -> contents


@pytest.fixture(scope="module")
def image(registry) -> Pushed:  # noqa: F811
    builder = ImageBuilder().busybox()
    expected = {}
    for n in range(1, LAYERS + 1):
        expected[n] = layer_files(n)
        builder.add_layer([file(name, data) for name, data in expected[n].items()])
    return Pushed(Pusher(registry.url).push_image("crash/pull", "1", builder.build()), expected)


def start_pull(tmp_path: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PULLER, str(tmp_path), name],
                            stderr=subprocess.PIPE)


def wait_until(check, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"the pull ended before {what}: {proc.stderr.read()!r}")
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.002)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stderr is not None
    proc.stderr.close()


def layers_root(tmp_path: Path) -> Path:
    return tmp_path / "root" / "storage" / "layers"


def committed(tmp_path: Path) -> list[Path]:
    root = layers_root(tmp_path)
    return [p for p in root.iterdir() if p.name != ".staging"] if root.is_dir() else []


def staged_bytes(tmp_path: Path) -> int:
    staging = layers_root(tmp_path) / ".staging"
    if not staging.is_dir():
        return 0
    return sum(f.stat().st_size for f in staging.glob("*/diff/data/*/*") if f.is_file())


def layer_diff_id(layer: Path) -> str:
    return json.loads((layer / "layer.json").read_text())["diff_id"]


def assert_visible_layers_whole(tmp_path: Path, image: Pushed) -> None:
    """Every layer directory outside staging is complete, with its record."""
    index_of = {d: i for i, d in enumerate(image.built.diff_ids)}
    for layer in committed(tmp_path):
        files = image.expected.get(index_of[layer_diff_id(layer)], {})
        assert sorted(p.name for p in (layer / "diff").glob("data/*/*")) == sorted(
            Path(name).name for name in files)
        for name, data in files.items():
            assert (layer / "diff" / name).read_bytes() == data, (layer, name)


def reopen_and_pull(tmp_path: Path, name: str, image: Pushed) -> None:
    config = Config(root=str(tmp_path / "root"))
    config.image.registries_conf = str(tmp_path / "none")
    config.image.registries_conf_dir = str(tmp_path / "none.d")
    config.image.signature_policy = str(tmp_path / "none.json")
    service = ImageService(config)
    try:
        assert list((layers_root(tmp_path) / ".staging").iterdir()) == []
        if not service.store.images.all():   # no record: nothing of the pull stays
            assert committed(tmp_path) == []
        record = service.pull(name)
        for n, files in image.expected.items():
            diff = service.store.layers.diff_dir(record.layers[n])
            for fname, data in files.items():
                assert (diff / fname).read_bytes() == data
    finally:
        service.close()


def test_kill_9_while_layers_unpack_leaves_only_staging(tmp_path, registry, image):  # noqa: F811
    """Every big blob stalls halfway: the kill lands with each big layer half
    written into staging and none of them committed (the small busybox
    layer comes whole, so it may or may not be committed by then: whole
    if it is)."""
    with FlakyProxy(registry.url) as proxy:
        proxy.stall_blobs = True
        proxy.stall_over = 1024 * 1024   # the config and busybox come whole
        name = f"{proxy.host}/crash/pull:1"
        proc = start_pull(tmp_path, name)
        try:
            wait_until(lambda: staged_bytes(tmp_path) >= FILE_BYTES, proc,
                       "half-unpacked layers in staging")
        finally:
            kill(proc)
        busybox = image.built.diff_ids[0]
        assert {layer_diff_id(p) for p in committed(tmp_path)} <= {busybox}
        assert_visible_layers_whole(tmp_path, image)
        proxy.released.set()
    reopen_and_pull(tmp_path, f"{registry.host}/crash/pull:1", image)


@pytest.mark.parametrize("moment", ["first file data", "first commit", "second commit"])
def test_kill_9_during_a_pull_shows_no_half_layer(tmp_path, registry, image, moment):  # noqa: F811
    name = f"{registry.host}/crash/pull:1"
    proc = start_pull(tmp_path, name)
    try:
        if moment == "first file data":
            wait_until(lambda: staged_bytes(tmp_path) > 0, proc, moment)
        else:
            count = 1 if moment == "first commit" else 2
            wait_until(lambda: len(committed(tmp_path)) >= count, proc, moment)
    finally:
        kill(proc)
    assert_visible_layers_whole(tmp_path, image)
    reopen_and_pull(tmp_path, name, image)
