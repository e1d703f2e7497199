"""`MemoryResponses` (where stored responses live with `cache.backend: none`): expiry on an injected
clock, and eviction of the oldest writes once the values pass `max_bytes`; the stored value's encoding."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from proxy.responses.store import MemoryResponses, ResponseStore, StoredResponse, encode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_expires_at_its_ttl() -> None:
    clock = Clock()
    memory = MemoryResponses(clock=clock)

    async def run() -> None:
        assert await memory.set("a", b"value", ttl=10)
        clock.now += 9.9
        assert await memory.get("a") == b"value"
        clock.now += 0.1
        assert await memory.get("a") is None
        assert await memory.set("a", b"again", ttl=10)  # written again: a fresh ttl
        clock.now += 5
        assert await memory.get("a") == b"again"

    asyncio.run(run())


def test_the_oldest_writes_are_evicted_once_the_bytes_pass_the_limit() -> None:
    memory = MemoryResponses(max_bytes=10, clock=Clock())

    async def run() -> dict[str, bytes | None]:
        for key in "abc":
            assert await memory.set(key, b"1234", ttl=60)  # a out: 12 bytes > 10
        assert await memory.set("b", b"123456", ttl=60)  # b rewritten (c 4 + b 6 = 10: nothing out)
        assert await memory.set("d", b"1", ttl=60)  # 11 > 10: the oldest write goes, c (b moved to the end)
        assert not await memory.set("e", b"x" * 11, ttl=60)  # larger than the whole store: refused
        return {key: await memory.get(key) for key in "abcde"}

    assert asyncio.run(run()) == {"a": None, "b": b"123456", "c": None, "d": b"1", "e": None}


def test_a_stored_response_expires_with_responses_ttl() -> None:
    clock = Clock()
    store = ResponseStore(MemoryResponses(clock=clock), ttl=30)
    stored = StoredResponse({"id": "resp_1"}, [], [{"role": "user", "content": "hi"}])

    async def run() -> None:
        assert await store.put(stored, "k" * 64)
        assert await store.get("resp_1", "k" * 64) == stored
        assert await store.get("resp_1", "j" * 64) is None  # another key's id reads as unknown
        clock.now += 30
        assert await store.get("resp_1", "k" * 64) is None

    asyncio.run(run())


scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),  # orjson writes inf as null
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@given(objects, st.lists(objects, max_size=3), st.lists(objects, max_size=3))
def test_the_response_encoded_once_is_spliced_into_the_stored_copy(
    response: dict[str, Any], items: list[dict[str, Any]], messages: list[dict[str, Any]]
) -> None:
    """The body sent is not encoded again for the store: splicing it in gives the very bytes of
    encoding the whole, which read back as the stored response."""
    stored = StoredResponse({**response, "id": "resp_1"}, items, messages)
    whole = orjson.dumps({"response": stored.response, "input_items": items, "messages": messages})
    assert encode(stored, orjson.dumps(stored.response)) == encode(stored) == whole

    async def run() -> StoredResponse | None:
        store = ResponseStore(MemoryResponses(), ttl=30)
        assert await store.put(stored, "k" * 64, response_json=orjson.dumps(stored.response))
        return await store.get("resp_1", "k" * 64)

    assert asyncio.run(run()) == stored
