"""A `diskcache.Disk` that stores and returns raw bytes only and never unpickles anything.

diskcache's default `Disk` pickles values and unpickles whatever row it reads (CVE-2025-69872), so a
crafted row in the cache directory could run code. `BytesDisk` refuses every key or value that is not
a str key / bytes value on write, and on read raises `RefusedValue` for any row it did not write
itself (pickle, text, int, or a value file whose name is not diskcache's random `xx/yy/<hex>.val`),
which the backend turns into a miss plus an eviction. `remove` likewise only deletes file names of
that shape, so a crafted row cannot make an eviction delete a file outside the cache directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

__all__ = ["BytesDisk", "RefusedValue", "UnreadableValue"]

_VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val")


class RefusedValue(Exception):
    """A stored row that `BytesDisk` did not write (pickle, text, number, odd file name)."""


class UnreadableValue(Exception):
    """A value file that exists but cannot be read (I/O error, permissions)."""


def _safe_name(filename: object) -> str:
    if not isinstance(filename, str) or _VALUE_FILE.fullmatch(filename.replace(os.sep, "/")) is None:
        raise RefusedValue(f"unexpected value file name {filename!r}")
    return filename


class BytesDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no type hints
    """Keys are str, values are bytes: inline in SQLite when small, else in a value file."""

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._local = threading.local()

    @contextlib.contextmanager
    def discard_on_failure(self) -> Iterator[None]:
        """Delete the value files written in this block if it raises (their row never committed)."""
        written: list[str] = []
        self._local.written = written
        try:
            yield
        except BaseException:
            for name in written:
                self.remove(name)
            raise
        finally:
            self._local.written = None

    def put(self, key: Any) -> tuple[Any, bool]:
        """Store str keys as-is (raw); refuse anything that would need pickling."""
        if type(key) is not str:
            raise TypeError(f"cache keys must be str, not {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        """Return a raw key; refuse a pickled one."""
        if not raw:
            raise RefusedValue("pickled key")
        return key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        """Return the Cache-table columns for a bytes value; a failed file write leaves no file."""
        if type(value) is not bytes or read:
            raise TypeError(f"cache values must be bytes, not {type(value).__name__}")
        if len(value) < self.min_file_size:
            return 0, MODE_RAW, None, sqlite3.Binary(value)
        filename, full_path = self.filename(key, value)
        try:
            folder = os.path.dirname(full_path)
            for level in (os.path.dirname(folder), folder):  # makedirs gives `mode` to the leaf only
                os.makedirs(level, mode=0o700, exist_ok=True)
            fd = os.open(full_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)  # entries are private
            with os.fdopen(fd, "wb") as handle:
                handle.write(value)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(full_path)
            raise
        written = getattr(self._local, "written", None)
        if written is not None:
            written.append(filename)
        return len(value), MODE_BINARY, filename, None

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> bytes:
        """Return the stored bytes; refuse every row `store` could not have written."""
        if read:
            raise RefusedValue("file handles are not served")
        if mode == MODE_RAW:
            if type(value) is not bytes:
                raise RefusedValue(f"raw value of type {type(value).__name__}")
            return value
        if mode != MODE_BINARY or value is not None:
            raise RefusedValue(f"value mode {mode!r}")
        path = os.path.join(self._directory, _safe_name(filename))
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise  # diskcache treats this as "deleted meanwhile": a plain miss
        except OSError as exc:
            raise UnreadableValue(str(exc)) from exc

    def remove(self, file_path: Any) -> None:
        """Delete a value file (and its empty parents) only if it has diskcache's own name shape."""
        try:
            name = _safe_name(file_path)
        except RefusedValue:
            return
        super().remove(name)
