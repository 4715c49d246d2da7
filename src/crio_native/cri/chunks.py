"""The Stream* list RPCs of cri-api 1.36: the same answers as their List*
counterparts, sent in chunks so a node with many pods never hits the gRPC
message size limit."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
CHUNK = 100   # items per message


def chunked(items: Sequence, make: Callable[[list], T]) -> Iterator[T]:
    """One response per CHUNK items (none for no items)."""
    for start in range(0, len(items), CHUNK):
        yield make(list(items[start:start + CHUNK]))
