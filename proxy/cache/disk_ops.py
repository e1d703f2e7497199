"""The synchronous diskcache operations the disk backend runs on its writer thread."""

from __future__ import annotations

import contextlib
import sqlite3
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import diskcache

__all__ = ["clear", "delete_if", "prune", "restore", "volume", "write"]

_T = TypeVar("_T")


def write(cache: diskcache.Cache, op: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a write on the writer thread; on failure drop its value files and any half-open transaction.

    SQLite may leave a transaction open after SQLITE_FULL / SQLITE_IOERR (even on COMMIT); diskcache does
    not roll it back, which would make every later write on this connection fail.
    """
    try:
        with cache.disk.discard_on_failure():
            return op(*args, **kwargs)
    except BaseException:
        con = getattr(cache, "_con", None)  # diskcache's per-thread connection (private, guarded)
        if isinstance(con, sqlite3.Connection) and con.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
        raise


def delete_if(cache: diskcache.Cache, key: str, token: bytes) -> bool:
    """Delete `key` only while it still holds `token` (compare-and-delete)."""
    with cache.transact():
        if cache.get(key) != token:
            return False
        return bool(cache.delete(key))


def restore(
    cache: diskcache.Cache,
    key: str,
    sealed: bytes,
    reseal: Callable[[float], bytes],
    expire_at: float | None,
    clock: Callable[[], float],
) -> bool:
    """Re-store an unchanged entry, signed again by `reseal(now)`, with its original expiry."""
    now = clock()
    if expire_at is not None and expire_at <= now:
        return False
    with cache.transact():
        if cache.get(key) != sealed:
            return False
        expire = None if expire_at is None else expire_at - now
        return bool(cache.set(key, reseal(now), expire=expire))


def volume(cache: diskcache.Cache) -> tuple[int, int, int]:
    """Entries (expired ones included until pruned), bytes on disk, size limit."""
    return len(cache), int(cache.volume()), int(cache.size_limit)


def prune(cache: diskcache.Cache) -> int:
    """Drop expired entries and cull to the size limit, then repair; return how many entries went."""
    removed = int(cache.expire()) + int(cache.cull())
    with warnings.catch_warnings():  # check() reports what it fixed as warnings: not ours to raise
        warnings.simplefilter("ignore")
        cache.check(fix=True)  # orphan value files (a writer killed mid-way), counters, VACUUM
    return removed


def clear(cache: diskcache.Cache) -> int:
    """Remove every row; return how many."""
    return int(cache.clear())
