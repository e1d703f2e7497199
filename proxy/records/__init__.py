"""The record store behind feedback, the review queue and `guardproxy cases export`.

A record is one answer as a later step needs it: the request (messages redacted), the model's raw
output before repair, the final output, outcome, repairs, violations, deployment, alias, policy, the
caller's key (name and hash), the cache key, and the feedback on it. `store` keeps records (SQLite on
one host, Redis for replicas); `recorder` decides what to keep and writes it off the event loop.
"""

from __future__ import annotations

from .recorder import FAILURE_OUTCOMES, FEEDBACK_ONLY_TTL, Recorder, open_recorder
from .store import RecordStore, SqliteRecords, open_store, parse_since

__all__ = [
    "FAILURE_OUTCOMES",
    "FEEDBACK_ONLY_TTL",
    "RecordStore",
    "Recorder",
    "SqliteRecords",
    "open_recorder",
    "open_store",
    "parse_since",
]
