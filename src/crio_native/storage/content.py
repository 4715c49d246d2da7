"""Small blobs (manifests, indexes, image configs) stored by digest:
<storage>/blobs/<algorithm>/<hex>."""
from __future__ import annotations

from pathlib import Path

from crio_native.state.files import atomic_write


class ContentStore:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "sha256").mkdir(exist_ok=True)

    def path(self, digest: str) -> Path:
        algorithm, hexd = digest.split(":", 1)
        return self.root / algorithm / hexd

    def put(self, digest: str, data: bytes) -> None:
        """The caller has already verified `data` against `digest`."""
        path = self.path(digest)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, data, mode=0o644)

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def all(self) -> list[str]:
        return [f"{algo.name}:{p.name}" for algo in self.root.iterdir() if algo.is_dir()
                for p in algo.iterdir() if not p.name.startswith(".")]
