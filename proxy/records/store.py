"""Where records live: an SQLite file on one host (WAL, 0600), or Redis when the cache is Redis.

A record is a JSON document (a dict) keyed by the request id guardproxy returned; both stores keep
the same documents and answer the same queries, and also find a key's records by the client's own
`x-request-id` (`client_request_id`, which need not be unique). The SQLite store is synchronous (the
recorder calls it through `asyncio.to_thread`); the Redis one is async. `RecordStore` is the async
face of both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

_log = logging.getLogger("guardproxy.records")
__all__ = ["RecordStore", "RedisRecords", "SqliteRecords", "open_store", "parse_since"]

Doc = dict[str, Any]
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    alias TEXT NOT NULL,
    policy TEXT NOT NULL,
    outcome TEXT NOT NULL,
    doc BLOB NOT NULL,
    owner TEXT,
    client_request_id TEXT
);
CREATE INDEX IF NOT EXISTS records_created ON records (created);
CREATE INDEX IF NOT EXISTS records_expires ON records (expires);
"""
_ADDED = ("owner", "client_request_id")  # columns a file made by an earlier version lacks
_CLIENT_INDEX = "CREATE INDEX IF NOT EXISTS records_client ON records (client_request_id, owner)"
_COLUMNS = "id, created, expires, alias, policy, outcome, doc, owner, client_request_id"
# one (owner, client id) -> {record id: expires} set per client id; it lives as long as its last record
_INDEX_CLIENT_ID = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]) * 1000))
"""


def parse_since(text: str) -> float:
    """`24h`, `30m`, `7d`, `90` (seconds) as seconds; ValueError otherwise."""
    match = _SINCE.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 24h, 7d)")
    return float(match.group(1)) * _UNIT[match.group(2)]


class RecordStore(Protocol):
    """What the recorder, the feedback route, the review queue and the export use."""

    async def put_many(self, docs: Sequence[Doc]) -> None: ...
    async def get(self, request_id: str) -> Doc | None: ...
    async def by_client_id(self, owner: str, client_request_id: str, *, limit: int = 2) -> list[Doc]: ...
    async def query(
        self,
        *,
        since: float | None = None,
        policy: str | None = None,
        alias: str | None = None,
        outcomes: Iterable[str] = (),
        limit: int = 200,
    ) -> list[Doc]: ...
    async def close(self) -> None: ...


def _matches(doc: Doc, policy: str | None, alias: str | None, outcomes: set[str]) -> bool:
    return (
        (policy is None or doc.get("policy") == policy)
        and (alias is None or doc.get("alias") == alias)
        and (not outcomes or doc.get("outcome") in outcomes)
    )


class SqliteRecords:
    """Records in one SQLite file (WAL, mode 0600); one connection, used by one thread at a time."""

    def __init__(self, path: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        """`path` None: an in-memory database (the folder cannot be written: records last this process)."""
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # created private, before sqlite opens it
            os.close(fd)
            os.chmod(path, 0o600)
        target = ":memory:" if path is None else path
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        for column in _ADDED:
            if column not in present:
                self._db.execute(f"ALTER TABLE records ADD COLUMN {column} TEXT")
        self._db.execute(_CLIENT_INDEX)
        self._pruned = 0.0

    # synchronous API (call it from a worker thread) -----------------------------------------------
    def put_many_sync(self, docs: Sequence[Doc]) -> None:
        rows = [
            (d["id"], d["created"], d["expires"], d["alias"], d["policy"], d["outcome"], orjson.dumps(d))
            + (d.get("owner"), d.get("client_request_id"))
            for d in docs
        ]
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                if now - self._pruned > 60:  # expired records go at most once a minute, with a write
                    self._db.execute("DELETE FROM records WHERE expires < ?", (now,))
                    self._pruned = now
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_sync(self, request_id: str) -> Doc | None:
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM records WHERE id = ? AND expires >= ?", (request_id, self._clock())
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def by_client_id_sync(self, owner: str, client_request_id: str, *, limit: int = 2) -> list[Doc]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM records WHERE client_request_id = ? AND owner = ? AND expires >= ? LIMIT ?",
                (client_request_id, owner, self._clock(), max(1, limit)),
            ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def query_sync(
        self,
        *,
        since: float | None = None,
        policy: str | None = None,
        alias: str | None = None,
        outcomes: Iterable[str] = (),
        limit: int = 200,
    ) -> list[Doc]:
        sql = ["SELECT doc FROM records WHERE expires >= ?"]
        args: list[Any] = [self._clock()]
        if since is not None:
            sql.append("AND created >= ?")
            args.append(since)
        for column, value in (("policy", policy), ("alias", alias)):
            if value is not None:
                sql.append(f"AND {column} = ?")
                args.append(value)
        wanted = sorted(set(outcomes))
        if wanted:
            sql.append(f"AND outcome IN ({', '.join('?' * len(wanted))})")
            args.extend(wanted)
        sql.append("ORDER BY created DESC LIMIT ?")
        args.append(max(1, limit))
        with self._lock:
            rows = self._db.execute(" ".join(sql), args).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def close_sync(self) -> None:
        with self._lock:
            self._db.close()

    # the async face --------------------------------------------------------------------------------
    async def put_many(self, docs: Sequence[Doc]) -> None:
        await asyncio.to_thread(self.put_many_sync, docs)

    async def get(self, request_id: str) -> Doc | None:
        return await asyncio.to_thread(self.get_sync, request_id)

    async def by_client_id(self, owner: str, client_request_id: str, *, limit: int = 2) -> list[Doc]:
        return await asyncio.to_thread(lambda: self.by_client_id_sync(owner, client_request_id, limit=limit))

    async def query(self, **filters: Any) -> list[Doc]:
        return await asyncio.to_thread(lambda: self.query_sync(**filters))

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)


class RedisRecords:
    """Records in Redis (`cache.backend: redis`): every replica reads and writes the same ones.

    One string per record (`guardproxy:rec:<id>`, expiring with the record) and one sorted set of ids
    by creation time for the queue and the export; ids whose record has expired are dropped from the
    set as queries meet them. A record with a `client_request_id` is also in the sorted set
    `guardproxy:rec:cid:<owner>:<client id>` (scored by its expiry, expiring with its last record).
    """

    def __init__(self, url: str, *, prefix: str = "guardproxy:rec:", clock: Callable[[], float] = time.time):
        import redis.asyncio as redis_asyncio

        self._redis = redis_asyncio.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._index = prefix + "index"
        self._clock = clock

    async def put_many(self, docs: Sequence[Doc]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        now = self._clock()
        for d in docs:
            ttl_ms = max(1, int((d["expires"] - now) * 1000))
            pipe.set(self._prefix + d["id"], orjson.dumps(d), px=ttl_ms)
            pipe.zadd(self._index, {d["id"]: d["created"]})
            if d.get("client_request_id") and d.get("owner"):
                key = self._client_key(d["owner"], d["client_request_id"])
                pipe.eval(_INDEX_CLIENT_ID, 1, key, d["id"], d["expires"], now)
        await pipe.execute()

    def _client_key(self, owner: str, client_request_id: str) -> str:
        return f"{self._prefix}cid:{owner}:{client_request_id}"

    async def get(self, request_id: str) -> Doc | None:
        raw = await self._redis.get(self._prefix + request_id)
        return orjson.loads(raw) if raw else None

    async def by_client_id(self, owner: str, client_request_id: str, *, limit: int = 2) -> list[Doc]:
        key = self._client_key(owner, client_request_id)
        ids: list[Any] = await self._redis.zrangebyscore(
            key, self._clock(), "+inf", start=0, num=max(1, limit)
        )
        if not ids:
            return []
        values = await self._redis.mget(
            [self._prefix + (i.decode() if isinstance(i, bytes) else i) for i in ids]
        )
        return [doc for v in values if v and (doc := orjson.loads(v)).get("owner") == owner]

    async def query(
        self,
        *,
        since: float | None = None,
        policy: str | None = None,
        alias: str | None = None,
        outcomes: Iterable[str] = (),
        limit: int = 200,
    ) -> list[Doc]:
        wanted = set(outcomes)
        found: list[Doc] = []
        start, page = 0, max(100, limit)
        low = "-inf" if since is None else since
        while len(found) < limit:
            found_ids: list[Any] = await self._redis.zrevrangebyscore(
                self._index, "+inf", low, start=start, num=page
            )
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found_ids]
            if not ids:
                break
            start += len(ids)
            values = await self._redis.mget([self._prefix + i for i in ids])
            gone = [i for i, v in zip(ids, values, strict=True) if v is None]
            if gone:
                await self._redis.zrem(self._index, *gone)
                start -= len(gone)
            for value in values:
                if value is not None and _matches(doc := orjson.loads(value), policy, alias, wanted):
                    found.append(doc)
        return found[:limit]

    async def close(self) -> None:
        await self._redis.aclose()


def open_store(backend: str, *, path: Path, url: str) -> RecordStore:
    """SQLite under the cache folder, or Redis when the cache is Redis."""
    if backend == "redis":
        return RedisRecords(url)
    try:
        return SqliteRecords(path)
    except (OSError, sqlite3.Error) as exc:  # a cache folder we cannot write must not stop the proxy
        _log.warning("records: cannot open %s (%s); keeping records in memory", path, exc)
        return SqliteRecords(None)
