from __future__ import annotations

import pytest

from crio_native.errors import ResourceExhausted
from crio_native.streaming.tokens import (ATTACH, EXEC, PORTFORWARD, StreamRequest, TokenCache,
                                          ttl_from_env)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_token_is_taken_once():
    cache = TokenCache()
    req = StreamRequest(EXEC, container_id="c", cmd=("true",), stdout=True)
    token = cache.insert(req)
    assert len(token) >= 20 and "/" not in token and "+" not in token
    assert cache.consume(EXEC, token) == req
    assert cache.consume(EXEC, token) is None


def test_tokens_are_distinct():
    cache = TokenCache()
    tokens = {cache.insert(StreamRequest(ATTACH, container_id="c")) for _ in range(500)}
    assert len(tokens) == 500


def test_a_token_of_another_kind_is_spent_and_refused():
    cache = TokenCache()
    token = cache.insert(StreamRequest(EXEC, container_id="c"))
    assert cache.consume(ATTACH, token) is None
    assert cache.consume(EXEC, token) is None


def test_tokens_expire():
    clock = Clock()
    cache = TokenCache(ttl=60, clock=clock)
    early = cache.insert(StreamRequest(PORTFORWARD, pod_id="p"))
    clock.now += 30
    late = cache.insert(StreamRequest(PORTFORWARD, pod_id="p"))
    clock.now += 30
    assert cache.consume(PORTFORWARD, early) is None
    assert len(cache) == 1
    assert cache.consume(PORTFORWARD, late) is not None


def test_in_flight_tokens_are_bounded():
    cache = TokenCache(max_in_flight=2)
    cache.insert(StreamRequest(EXEC))
    cache.insert(StreamRequest(EXEC))
    with pytest.raises(ResourceExhausted):
        cache.insert(StreamRequest(EXEC))


@pytest.mark.parametrize("value,ttl", [("2.5", 2.5), ("0", 60.0), ("x", 60.0), (None, 60.0)])
def test_ttl_from_env(monkeypatch, value, ttl):
    if value is None:
        monkeypatch.delenv("CRIO_NATIVE_STREAM_TOKEN_TTL", raising=False)
    else:
        monkeypatch.setenv("CRIO_NATIVE_STREAM_TOKEN_TTL", value)
    assert ttl_from_env() == ttl
