"""Logging set-up: JSON lines in production, readable text on a terminal; both pass through `scrub`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from .redaction import scrub
from .settings import LogSettings, Settings

__all__ = ["JsonFormatter", "TextFormatter", "config_secrets", "configure_logging"]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={"fields": {...}}` adds fields; text is scrubbed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created if record.created else time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in _fields(record).items():
            data.setdefault(name, value)
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__
            data["error_message"] = str(record.exc_info[1])[:500]
        return scrub(orjson.dumps(data, default=str).decode(), self._secrets)


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


def config_secrets(settings: Settings) -> tuple[str, ...]:
    """Every provider key in the config, for the scrubbers (logs, audit lines)."""
    keys = {d.api_key for alias in settings.models.values() for d in alias.deployments if d.api_key}
    return tuple(sorted(k for k in keys if len(k) >= 4))


def configure_logging(settings: LogSettings, *, secrets: Iterable[str] = ()) -> None:
    """Route the `guardproxy` loggers to stderr: JSON unless `format` is text or auto on a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    as_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter(secrets) if as_json else TextFormatter(secrets))
    root = logging.getLogger("guardproxy")
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    root.propagate = False
    for noisy in ("LiteLLM", "litellm", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
