"""A runc-generated OCI bundle around a busybox-only rootfs, for tests and
benchmarks that drive runc (directly or through the monitor)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

BUSYBOX = "/bin/busybox"


class RuncBundle:
    """`runc spec` defaults in `path`; with_args() rewrites the process args."""

    def __init__(self, path: Path):
        self.path = path
        rootfs = path / "rootfs"
        for d in ("bin", "proc", "dev", "sys", "tmp"):
            (rootfs / d).mkdir(parents=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        subprocess.run(["runc", "spec"], cwd=path, check=True)

    def with_args(self, *args: str) -> Path:
        config_path = self.path / "config.json"
        config = json.loads(config_path.read_text())
        config["process"].update(args=list(args), terminal=False)
        config_path.write_text(json.dumps(config))
        return self.path
