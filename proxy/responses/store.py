"""Stored responses (`store: true`): the Response object, its input items and the chat messages that
continue it, kept for `responses.ttl` in the app's cache backend (disk or Redis, so every replica sees
them), under a key scoped to the caller's API key. Another key's id reads as unknown."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..errors import InvalidRequest, ProxyError

__all__ = [
    "MemoryResponses",
    "PreviousResponseNotFound",
    "ResponseNotFound",
    "ResponseStore",
    "StoredResponse",
    "encode",
]

_DELETED = b"null"  # a tombstone: the backends have no delete, and a deleted id stays unknown
_TOMBSTONE_TTL = 60.0


class ResponseNotFound(ProxyError):
    """GET / DELETE of an id that is unknown, expired or another key's."""

    status_code = 404
    type = "invalid_request_error"


class PreviousResponseNotFound(InvalidRequest):
    """`previous_response_id` that is unknown, expired or another key's (400, as OpenAI)."""


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    messages: list[dict[str, Any]]  # the conversation so far as chat messages, this answer included


class _Backend(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: float) -> bool: ...


class MemoryResponses:
    """Where responses live when `cache.backend` is `none`: this process only, bounded, oldest out first.

    `store: true` is OpenAI's default, and clients chain turns with `previous_response_id`; turning the
    answer cache off must not break that. One per app (the lifespan's state), never shared by replicas.
    """

    def __init__(self, *, max_bytes: int = 64 * 2**20, clock: Any = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if len(value) > self._max:
            return False
        old = self._entries.pop(key, None)
        self._bytes -= len(old[1]) if old else 0
        self._entries[key] = (self._clock() + ttl, value)
        self._bytes += len(value)
        while self._bytes > self._max:
            self._bytes -= len(self._entries.popitem(last=False)[1][1])
        return True


class ResponseStore:
    """Responses by id, per caller key, in a `CacheBackend` (or `MemoryResponses`)."""

    def __init__(self, cache: _Backend, *, ttl: float) -> None:
        self._cache = cache
        self._ttl = ttl

    @staticmethod
    def _key(response_id: str, key_hash: str | None) -> str:
        scope = hashlib.sha256(f"{key_hash or 'anonymous'}\0{response_id}".encode()).hexdigest()
        return f"responses:{scope}"

    async def put(
        self, stored: StoredResponse, key_hash: str | None, *, response_json: bytes | None = None
    ) -> bool:
        """`response_json`: `stored.response` as already encoded (the body sent), not encoded again."""
        value = encode(stored, response_json)
        return await self._cache.set(self._key(stored.response["id"], key_hash), value, self._ttl)

    async def get(self, response_id: str, key_hash: str | None) -> StoredResponse | None:
        raw = await self._cache.get(self._key(response_id, key_hash))
        if not raw or raw == _DELETED:
            return None
        try:
            data = orjson.loads(raw)
            return StoredResponse(data["response"], data["input_items"], data["messages"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    async def find(self, response_id: str, key_hash: str | None) -> StoredResponse:
        """The stored response, or 404 `response_not_found`."""
        stored = await self.get(response_id, key_hash)
        if stored is None:
            raise ResponseNotFound(
                f"No response with id '{response_id}' is stored for this API key.", code="response_not_found"
            )
        return stored

    async def previous(self, response_id: Any, key_hash: str | None) -> StoredResponse:
        """The response a request continues, or 400 `previous_response_not_found`."""
        stored = await self.get(response_id, key_hash) if isinstance(response_id, str) else None
        if stored is None:
            raise PreviousResponseNotFound(
                f"Previous response with id '{response_id}' not found (unknown, expired, deleted, stored"
                " with `store: false`, or another API key's).",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return stored

    async def delete(self, response_id: str, key_hash: str | None) -> None:
        await self.find(response_id, key_hash)
        await self._cache.set(self._key(response_id, key_hash), _DELETED, _TOMBSTONE_TTL)


def encode(stored: StoredResponse, response_json: bytes | None = None) -> bytes:
    """What `orjson.dumps({"response": ..., "input_items": ..., "messages": ...})` makes of `stored`,
    with `response_json` (the response's own encoding, when the caller has it) spliced in."""
    return b"".join(
        (
            b'{"response":',
            orjson.dumps(stored.response) if response_json is None else response_json,
            b',"input_items":',
            orjson.dumps(stored.input_items),
            b',"messages":',
            orjson.dumps(stored.messages),
            b"}",
        )
    )


def input_item_list(items: Sequence[Mapping[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """`GET .../input_items`: the OpenAI list object, newest first by default, `limit`/`after` paging."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise InvalidRequest("`limit` must be an integer.", param="limit") from None
    if not 1 <= limit <= 100:
        raise InvalidRequest("`limit` must be between 1 and 100.", param="limit")
    data = list(items) if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in data]
        data = data[ids.index(after) + 1 :] if after in ids else []
    page = data[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(data) > limit,
    }
