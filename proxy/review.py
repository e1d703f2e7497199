"""The review queue in /ui: flagged, rejected and negatively rated answers from the record store, and
negative-feedback rates per alias, policy and deployment. Verdicts are posted to /v1/feedback."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .dashboard import _admin, _services, admin_page
from .feedback import public_record

__all__ = ["QUEUE_OUTCOMES", "build_queue", "page", "queue", "rates"]

QUEUE_OUTCOMES = frozenset({"flagged", "rejected"})
SCAN = 2000  # records read per queue request (newest first)
SHOWN = 100


async def page(request: Request) -> Response:
    """GET /ui/review: the review page."""
    return await admin_page(request, "review.html")


async def queue(request: Request) -> Response:
    """GET /ui/api/review[?alias=&policy=]: the queue, newest first, and the feedback rates."""
    services = _services(request)
    _admin(services, request.headers.get("authorization"))
    alias = request.query_params.get("alias") or None
    policy = request.query_params.get("policy") or None
    docs: list[dict[str, Any]] = []
    if services.records is not None:
        await services.records.flush()
        docs = await services.records.store.query(alias=alias, policy=policy, limit=SCAN)
    body = {
        "record": services.runtime.settings.record,
        "items": build_queue(docs)[:SHOWN],
        "rates": rates(docs),
        "aliases": sorted({d["alias"] for d in docs}),
        "policies": sorted({d["policy"] for d in docs}),
    }
    return Response(orjson.dumps(body), media_type="application/json", headers={"cache-control": "no-store"})


def _bad(doc: Mapping[str, Any]) -> bool:
    return any(f.get("score", 0) < 0 for f in doc.get("feedback", {}).values())


def build_queue(docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records to review (flagged, rejected, or rated negatively), newest first."""
    items = [public_record(d) for d in docs if d.get("outcome") in QUEUE_OUTCOMES or _bad(d)]
    items.sort(key=lambda d: d.get("created", 0), reverse=True)
    return items


def rates(docs: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per alias, policy and deployment: recorded answers, rated ones, negative ones, bad / rated."""
    out: dict[str, list[dict[str, Any]]] = {}
    docs = list(docs)
    for dimension in ("alias", "policy", "deployment"):
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for d in docs:
            row = counts[str(d.get(dimension, ""))]
            row[0] += 1
            if d.get("feedback"):
                row[1] += 1
                row[2] += 1 if _bad(d) else 0
        out[dimension] = [
            {
                "name": name,
                "recorded": n,
                "rated": rated,
                "bad": bad,
                "bad_rate": bad / rated if rated else None,
            }
            for name, (n, rated, bad) in sorted(counts.items())
        ]
    return out
