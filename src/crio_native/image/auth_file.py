"""Credentials from a containers-auth.json(5) file: {"auths": {KEY: {"auth":
base64(user:password)}}}, KEY being a host[:port] or host/namespace/repo;
the most specific key that matches the source wins."""
from __future__ import annotations

import json
from pathlib import Path

from crio_native.errors import FailedPrecondition
from crio_native.image.distribution import Credentials
from crio_native.image.registries import Source


def _keys_for(source: Source) -> list[str]:
    parts = f"{source.host}/{source.repository}".split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def credentials_from_file(path: str, source: Source) -> Credentials | None:
    if not path or not Path(path).is_file():
        return None
    try:
        auths = json.loads(Path(path).read_text()).get("auths", {})
    except (OSError, ValueError) as e:
        raise FailedPrecondition(f"image.auth_file {path}: cannot read: {e}") from None
    normalized = {k.removeprefix("https://").removeprefix("http://").rstrip("/"): v
                  for k, v in auths.items()}
    for key in _keys_for(source):
        entry = normalized.get(key)
        if entry:
            return Credentials.from_auth(entry.get("username", ""), entry.get("password", ""),
                                         entry.get("auth", ""), entry.get("identitytoken", ""))
    return None
