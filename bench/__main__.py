"""`python -m bench [NAME ...]`: run the benchmarks (all by default).

Each benchmark module exposes BENCHMARK = (name, description, run) where
run() prints its own figures (medians and ratios against the peer measured
in the same run) and returns 0, or prints why a peer was skipped."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def discover() -> dict[str, tuple]:
    found = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"bench.{info.name}")
        bench = getattr(module, "BENCHMARK", None)
        if bench:
            found[bench[0]] = bench
    return found


def main(argv: list[str]) -> int:
    benches = discover()
    wanted = argv or sorted(benches)
    unknown = [w for w in wanted if w not in benches]
    if unknown:
        print(f"unknown benchmarks: {unknown}; have {sorted(benches)}", file=sys.stderr)
        return 2
    status = 0
    for name in wanted:
        _, description, run = benches[name]
        print(f"== {name}: {description}")
        status |= run()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
