"""The Stream* list RPCs of cri-api 1.36: the same answers as their List*
counterparts, sent in chunks so a node with many pods never hits the gRPC
message size limit."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
CHUNK = 100   # items per message


def chunked(items: Sequence, make: Callable[[list], T]) -> Iterator[T]:
    """One response per CHUNK items (none for no items)."""
    for start in range(0, len(items), CHUNK):
        yield make(list(items[start:start + CHUNK]))


def streamed(list_call: Callable[[Any], Any], list_request: type[Any], response: type[Any]
             ) -> Callable[[Any, Any], Iterator[Any]]:
    """The handler of a Stream* RPC from its List* counterpart: the same
    filter, the list answer's items in chunks.  Each of these messages has
    one field, so the field names come from the descriptors."""
    field = response.DESCRIPTOR.fields[0].name

    def handler(request: Any, _context: Any) -> Iterator[Any]:
        answer = list_call(list_request(filter=request.filter))
        items = getattr(answer, answer.DESCRIPTOR.fields[0].name)
        return chunked(items, lambda chunk: response(**{field: chunk}))

    return handler
