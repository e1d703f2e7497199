"""Logging set-up: JSON lines in production, readable text on a terminal; both pass through `scrub`."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Container, Iterable
from typing import Any

import orjson

from .redaction import scrub
from .settings import LogSettings, Settings

__all__ = ["BatchingStreamHandler", "JsonFormatter", "TextFormatter", "config_secrets", "configure_logging"]


_NUMBERS = (int, float, bool)
_MEMO_SIZE, _MEMO_CHARS = 512, 200  # strings remembered scrubbed (a bound on the memo: ~100 KB at most)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={"fields": {...}}` adds fields; text is scrubbed.

    Each string is scrubbed on its own before the line is rendered (a value seen recently comes from a
    small memo: an access line's alias, key, policy and path repeat), except the fields a record lists in
    `own_fields` (values the proxy made itself, see `proxy.access_log`). A record whose fields hold
    anything but strings, numbers and None is rendered first and scrubbed whole.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(secrets)
        self._scrubbed: dict[str, str] = {}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created if record.created else time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self._scrub(record.getMessage()),
        }
        whole = False  # a value of another type: scrub the rendered line instead
        own: Container[str] = getattr(record, "own_fields", ())
        for name, value in _fields(record).items():
            if name in data:
                continue
            if value.__class__ is str:
                if name not in own:
                    value = self._scrub(value)
            elif value is not None and value.__class__ not in _NUMBERS:
                whole = True
            data[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__
            data["error_message"] = self._scrub(str(record.exc_info[1])[:500])
        line = orjson.dumps(data, default=str).decode()
        return scrub(line, self._secrets) if whole else line

    def _scrub(self, text: str) -> str:
        done = self._scrubbed.get(text)
        if done is None:
            done = scrub(text, self._secrets)
            if len(text) <= _MEMO_CHARS:
                if len(self._scrubbed) >= _MEMO_SIZE:
                    self._scrubbed.clear()
                self._scrubbed[text] = done
        return done


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...` for a terminal; text is scrubbed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if fields:
            pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")
            first, nl, rest = text.partition("\n")
            text = f"{first} {pairs}{nl}{rest}"
        return scrub(text, self._secrets)


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes INFO lines (one access line per request) in batches.

    A write per line is a system call per request; under load the lines of one `interval` go out in one
    write. A warning or error flushes at once (with everything before it); so do `max_lines` pending
    lines, the end of the process (logging's atexit flush) and, outside an event loop, every line.
    A `kill -9` loses at most `interval` seconds of access lines.
    """

    def __init__(self, stream: Any, *, interval: float = 0.1, max_lines: int = 512) -> None:
        super().__init__(stream)
        self.interval = interval
        self.max_lines = max_lines
        self._pending: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is due on

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno > logging.INFO or len(self._pending) >= self.max_lines:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._scheduled_on = None
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                if self.stream is not None:
                    self.stream.write(text)
            if self.stream is not None and hasattr(self.stream, "flush"):
                self.stream.flush()
        finally:
            self.release()


def config_secrets(settings: Settings) -> tuple[str, ...]:
    """Every provider key in the config and the cache's HMAC secret, for the scrubbers (logs, audit lines)."""
    keys = {d.api_key for alias in settings.models.values() for d in alias.deployments if d.api_key}
    if settings.cache.secret:
        keys.add(settings.cache.secret)
    return tuple(sorted(k for k in keys if len(k) >= 4))


def configure_logging(settings: LogSettings, *, secrets: Iterable[str] = ()) -> None:
    """Route the `guardproxy` loggers to stderr: JSON unless `format` is text or auto on a terminal."""
    handler = BatchingStreamHandler(sys.stderr)
    as_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter(secrets) if as_json else TextFormatter(secrets))
    root = logging.getLogger("guardproxy")
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    root.propagate = False
    for noisy in ("LiteLLM", "litellm", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
