"""The access log: one structured line per answered request, on the `guardproxy.access` logger."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ACCESS_FIELDS", "ACCESS_LOGGER", "access_logger", "log_request"]

ACCESS_LOGGER = "guardproxy.access"
ACCESS_FIELDS = (
    "request_id",
    "client_request_id",
    "method",
    "path",
    "key",
    "alias",
    "policy",
    "deployment",
    "outcome",
    "attempts",
    "cache",
    "status",
    "latency_ms",
    "tokens",
    "cost",
)


# `request_id` is the server's own; `client_request_id` is whatever the client sent in `x-request-id`
_CLIENT_CHOSEN = ("client_request_id", "path", "alias")


_LOGGER = logging.getLogger(ACCESS_LOGGER)  # logging's registry keeps one per name anyway


def access_logger() -> logging.Logger:
    """The logger `log_request` writes to by default."""
    return _LOGGER


def log_request(logger: logging.Logger | None = None, **fields: Any) -> None:
    """Log one request as a single record; its fields land in the JSON line (see `proxy.logs`)."""
    logger = logger or access_logger()
    if not logger.isEnabledFor(logging.INFO):
        return
    clean: dict[str, Any] = {name: fields.pop(name, None) for name in ACCESS_FIELDS}
    clean.update(fields)
    for name in _CLIENT_CHOSEN:  # bounded here; secrets are scrubbed from the whole line by proxy.logs
        value = clean.get(name)
        if isinstance(value, str):
            clean[name] = value[:256]
    if isinstance(clean.get("latency_ms"), float):
        clean["latency_ms"] = round(clean["latency_ms"], 2)
    # makeRecord + handle is what `logger.info` does, minus the stack walk that finds the caller
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "request", (), None)
    record.fields = clean
    logger.handle(record)
