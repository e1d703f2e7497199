"""POST /v1/feedback: a rating of an answer guardproxy gave, attached to its record.

A key may rate only the answers it received (admin keys: any); an unknown, expired or foreign id is
the same 404. The id is ours (`x-guardproxy-request-id`), or the client's own `x-request-id` when it
names exactly one recorded answer of the caller's key (sent twice: 404, rate it by our id). A second
rating by the same key replaces the first. A negative one evicts the answer's cache entry (a
tombstone under its key: a miss on every replica sharing the cache), so the same request is answered
fresh; every rating is an audit event and counts in `guardproxy_feedback_total`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .errors import InvalidRequest
from .routes import read_body, services_of
from .wire import decode_body

__all__ = ["MAX_COMMENT", "MAX_CORRECTION", "MAX_LABEL", "parse_feedback", "post_feedback"]

MAX_LABEL = 200  # characters
MAX_COMMENT = 4 * 1024  # bytes (UTF-8)
MAX_CORRECTION = 64 * 1024  # bytes (UTF-8, as JSON when a mapping or list)
_FIELDS = ("request_id", "score", "label", "comment", "correction")
_WORDS = {"good": 1.0, "bad": -1.0}
_RETRY_PAUSES = (0.1, 0.3)  # seconds: an unknown id is looked up again, as records are written async


class FeedbackNotFound(InvalidRequest):
    status_code = 404
    code = "not_found"


def verdict_of(score: float) -> str:
    return "good" if score > 0 else "bad" if score < 0 else "neutral"


def parse_feedback(data: Mapping[str, Any]) -> dict[str, Any]:
    """The checked body: `{request_id, score (-1..1), label?, comment?, correction?}`; 400 otherwise."""
    for name in data:
        if name not in _FIELDS:
            raise InvalidRequest(f"Unknown field `{name}`; send {', '.join(_FIELDS)}.", param=name)
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 128:
        raise InvalidRequest(
            "`request_id` must be the x-guardproxy-request-id of an answer (or the x-request-id you sent).",
            param="request_id",
        )
    score = data.get("score")
    if isinstance(score, str) and score in _WORDS:
        score = _WORDS[score]
    if isinstance(score, bool) or not isinstance(score, int | float) or not -1 <= score <= 1:
        raise InvalidRequest('`score` must be a number from -1 to 1, "good" or "bad".', param="score")
    label, comment, correction = data.get("label"), data.get("comment"), data.get("correction")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise InvalidRequest(f"`label` must be a string of at most {MAX_LABEL} characters.", param="label")
    if comment is not None and (not isinstance(comment, str) or len(comment.encode()) > MAX_COMMENT):
        raise InvalidRequest(f"`comment` must be a string of at most {MAX_COMMENT} bytes.", param="comment")
    if correction is not None:
        size = len(correction.encode()) if isinstance(correction, str) else len(orjson.dumps(correction))
        if not isinstance(correction, str | dict | list) or size > MAX_CORRECTION:
            raise InvalidRequest(
                f"`correction` must be a string or JSON of at most {MAX_CORRECTION} bytes.",
                param="correction",
            )
    return {
        "request_id": request_id,
        "score": float(score),
        "verdict": verdict_of(float(score)),
        "label": label,
        "comment": comment,
        "correction": correction,
    }


async def post_feedback(request: Request) -> Response:
    """POST /v1/feedback: 201 with the stored record."""
    services = services_of(request)
    runtime = services.runtime
    caller = runtime.keys.authenticate(request.headers.get("authorization"))  # before the body
    raw = await read_body(request.receive, request.headers, runtime.settings.server)
    body = parse_feedback(decode_body(raw))
    recorder = services.records
    missing = FeedbackNotFound(
        f"No recorded answer '{body['request_id']}' for this key (recording: see `record` in config.yaml).",
        param="request_id",
    )
    if recorder is None:
        raise missing
    who = recorder.owner(caller.key_hash)
    doc = await recorder.find(body["request_id"], who, admin=caller.admin)
    for pause in _RETRY_PAUSES:  # another replica may still be writing the record (a few ms)
        if doc is not None:
            break
        await asyncio.sleep(pause)
        doc = await recorder.find(body["request_id"], who, admin=caller.admin)
    if doc is None:
        raise missing  # a foreign id looks exactly like an unknown one
    async with recorder.edits:  # read again under the lock: a concurrent rating is not lost
        doc = await recorder.lookup(doc["id"]) or doc
        entry = {
            **{k: body[k] for k in ("score", "verdict", "label", "comment", "correction")},
            "key_name": caller.name,
            "created": time.time(),
        }
        if body["verdict"] == "bad" and not doc.get("evicted"):
            ttl = runtime.settings.cache.ttl
            doc["evicted"] = await recorder.evict(doc, services.cache, ttl)
        doc = await recorder.attach(doc, who, entry, record_ttl=runtime.settings.record_ttl)
    services.metrics.feedback.labels(doc["alias"], doc["policy"], doc["deployment"], body["verdict"]).inc()
    services.audit.record(
        "feedback",
        request_id=doc["id"],
        alias=doc["alias"],
        policy=doc["policy"],
        deployment=doc["deployment"],
        score=body["score"],
        verdict=body["verdict"],
        label=body["label"],
        key=caller.name,
        evicted=bool(doc.get("evicted")),
        feedback_request_id=request.scope.get("state", {}).get("request_id"),
    )
    return Response(orjson.dumps(public_record(doc)), status_code=201, media_type="application/json")


def public_record(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the API shows it: the key's hash and the cache key stay inside."""
    hidden = ("owner", "cache_key", "expires")
    out = {k: v for k, v in doc.items() if k not in hidden}
    out["feedback"] = list(doc.get("feedback", {}).values())
    return out
