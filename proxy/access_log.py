"""The access log: one structured line per answered request, on the `guardproxy.access` logger.

A line is written for every request, so its record is made cheaply: `LogRecord.__init__` derives some
twenty attributes per call (the caller's file and module, thread and process names) that are the same
for every access line of a thread, so the record is a copy of a template made once per logger and
thread, with its time set. The values the proxy produced itself (`OWN_FIELDS`) are marked so the JSON
formatter (`proxy.logs`) does not scrub them; every other string still is.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Any

__all__ = ["ACCESS_FIELDS", "ACCESS_LOGGER", "OWN_FIELDS", "access_logger", "log_request"]

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
# strings the proxy made itself, never a client or the config: a random hex id, the outcome and cache words
OWN_FIELDS = frozenset({"request_id", "outcome", "cache"})

# `request_id` is the server's own; `client_request_id` is whatever the client sent in `x-request-id`
_CLIENT_CHOSEN = ("client_request_id", "path", "alias")


_LOGGER = logging.getLogger(ACCESS_LOGGER)  # logging's registry keeps one per name anyway


def access_logger() -> logging.Logger:
    """The logger `log_request` writes to by default."""
    return _LOGGER


def log_request(logger: logging.Logger | None = None, **fields: Any) -> None:
    """Log one request as a single record; its fields land in the JSON line (see `proxy.logs`)."""
    logger = logger or _LOGGER
    if not logger.isEnabledFor(logging.INFO):
        return
    if tuple(fields) != ACCESS_FIELDS:  # every field, in this order, then any extra ones
        fields = {**{name: fields.pop(name, None) for name in ACCESS_FIELDS}, **fields}
    for name in _CLIENT_CHOSEN:  # bounded here; secrets are scrubbed from the line by proxy.logs
        value = fields[name]
        if value.__class__ is str and len(value) > 256:
            fields[name] = value[:256]
    latency = fields["latency_ms"]
    if latency.__class__ is float:
        fields["latency_ms"] = round(latency, 2)
    record = _record(logger)
    record.fields = fields
    record.own_fields = OWN_FIELDS
    logger.handle(record)


def _record(logger: logging.Logger) -> logging.LogRecord:
    """What `logger.makeRecord(..., "request", ...)` returns (a custom record factory is still used)."""
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return logger.makeRecord(logger.name, logging.INFO, __file__, 0, "request", (), None)
    template = _template(logger.name, threading.current_thread())
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__.update(template)
    now = time.time()
    record.created = now
    record.msecs = int((now - int(now)) * 1000) + 0.0
    record.relativeCreated = template["relativeCreated"] + (now - template["created"]) * 1000
    return record


@functools.lru_cache(maxsize=64)
def _template(name: str, thread: threading.Thread) -> dict[str, Any]:
    """The attributes every access record of logger `name` made on this thread shares."""
    made = logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 0, "request", (), None)
    return dict(made.__dict__)


if hasattr(os, "register_at_fork"):  # a forked child has another process id (and maybe name)
    os.register_at_fork(after_in_child=_template.cache_clear)
