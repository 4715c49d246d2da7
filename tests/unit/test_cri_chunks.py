"""Stream* list RPCs send their answer in chunks."""
from __future__ import annotations

from crio_native.cri import chunks


def test_chunks_of_at_most_chunk_items(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 3)
    got = list(chunks.chunked(list(range(8)), tuple))
    assert got == [(0, 1, 2), (3, 4, 5), (6, 7)]
    assert list(chunks.chunked([], tuple)) == []
