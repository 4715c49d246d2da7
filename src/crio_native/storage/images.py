"""Image records, one JSON file per image ID (the config digest):
<storage>/images/<hex>.json, written crash-safely."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crio_native.state.files import atomic_write_json


@dataclass
class ImageRecord:
    id: str                      # config digest, "sha256:<hex>"
    manifest_digest: str         # the platform manifest this image came from
    config_digest: str
    layers: list[str]            # chain IDs, base first
    size: int                    # config + compressed layer bytes, as the registry serves them
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    user: str = ""               # the config's User field
    pulled_at: float = 0.0
    signature: str = "unverified"  # the signature policy's verdict at the last pull


class ImageRecords:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, image_id: str) -> Path:
        return self.root / (image_id.split(":", 1)[1] + ".json")

    def save(self, record: ImageRecord) -> None:
        atomic_write_json(self._path(record.id), asdict(record), mode=0o644)

    def get(self, image_id: str) -> ImageRecord | None:
        try:
            return ImageRecord(**json.loads(self._path(image_id).read_text()))
        except FileNotFoundError:
            return None

    def delete(self, image_id: str) -> None:
        self._path(image_id).unlink(missing_ok=True)

    def all(self) -> list[ImageRecord]:
        out = []
        for path in sorted(self.root.glob("*.json")):
            try:
                out.append(ImageRecord(**json.loads(path.read_text())))
            except FileNotFoundError:
                continue
        return out
