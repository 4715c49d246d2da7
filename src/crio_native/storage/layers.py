"""Layers unpacked once, each in its own directory named by chain ID:
<storage>/layers/<chain hex>/diff holds the files, layer.json the record.
A layer is unpacked into <storage>/layers/.staging/<random> and renamed into
place only when complete and verified, so a half-pulled layer is never
visible and a crashed pull leaves only staging debris, cleared at start."""
from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from crio_native.state.files import atomic_write_json, fsync_dir

STAGING = ".staging"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain IDs: ChainID(L0) = DiffID(L0),
    ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


@dataclass
class LayerRecord:
    chain_id: str
    diff_id: str
    parent: str          # chain ID of the layer below, "" for the base
    compressed_digest: str
    compressed_size: int
    size: int            # bytes of file data unpacked


def syncfs(path: Path) -> None:
    """syncfs(2) of the filesystem holding `path` (the os module has no wrapper)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs `{path}`: {os.strerror(err)}")
    finally:
        os.close(fd)


class LayerStore:
    def __init__(self, root: Path, sync: bool = False):
        self.root = root
        # image.sync_layers: flush a layer's files to disk before commit
        self.sync = sync
        self.staging = root / STAGING
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)  # debris of interrupted pulls
        self.staging.mkdir()
        self.links = root.parent / "l"
        self.links.mkdir(exist_ok=True)

    def path(self, chain_id: str) -> Path:
        return self.root / chain_id.split(":", 1)[1]

    def diff_dir(self, chain_id: str) -> Path:
        return self.path(chain_id) / "diff"

    def exists(self, chain_id: str) -> bool:
        return (self.path(chain_id) / "layer.json").is_file()

    def get(self, chain_id: str) -> LayerRecord:
        return LayerRecord(**json.loads((self.path(chain_id) / "layer.json").read_text()))

    def new_staging(self) -> Path:
        """An empty layer directory (with diff/) to unpack into."""
        d = Path(tempfile.mkdtemp(dir=self.staging))
        os.chmod(d, 0o700)
        (d / "diff").mkdir(mode=0o755)
        return d

    def commit(self, staged: Path, record: LayerRecord) -> None:
        """Make a staged layer visible under its chain ID (first writer wins).
        A kill -9 before the rename leaves only staging debris; the files'
        data reaches the disk before the rename only with `sync` (one
        syncfs for the whole layer instead of an fsync per file)."""
        if self.sync:
            syncfs(staged)
        atomic_write_json(staged / "layer.json", asdict(record), mode=0o644)
        try:
            os.rename(staged, self.path(record.chain_id))
        except OSError:
            if not self.exists(record.chain_id):
                raise
            shutil.rmtree(staged, ignore_errors=True)
            return
        fsync_dir(self.root)

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def short_link(self, chain_id: str) -> Path:
        """<storage>/l/<10 chars> → the layer's diff dir: overlay mount options
        name layers by these, so even images with many layers fit in one page."""
        name = base64.b32encode(bytes.fromhex(chain_id.split(":", 1)[1])).decode()[:10].lower()
        link = self.links / name
        target = os.path.relpath(self.diff_dir(chain_id), self.links)
        try:
            os.symlink(target, link)
        except FileExistsError:
            if os.readlink(link) != target:
                raise
        return link

    def remove(self, chain_id: str) -> None:
        """Rename away first so a crash mid-delete leaves only staging debris."""
        self.short_link(chain_id).unlink(missing_ok=True)
        path = self.path(chain_id)
        doomed = self.staging / f"removing-{path.name}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def all(self) -> list[str]:
        return ["sha256:" + p.name for p in self.root.iterdir()
                if p.name != STAGING and (p / "layer.json").is_file()]
