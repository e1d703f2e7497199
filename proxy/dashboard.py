"""The live dashboard: the page, its two static assets and a JSON snapshot read from the metrics registry."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample
from starlette.requests import Request
from starlette.responses import Response

from .auth import Caller
from .errors import PermissionDenied, ProxyError
from .redaction import scrub

if TYPE_CHECKING:
    from .services import Services

__all__ = ["admin_page", "asset", "build_snapshot", "page", "quantile", "read_audit_tail", "snapshot"]

UI_DIR = Path(__file__).resolve().parent / "ui"
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",  # the review queue (proxy.review)
    "review.css": "text/css; charset=utf-8",
}
AUDIT_TAIL_BYTES = 64 * 1024
AUDIT_EVENTS = 15
EXCERPT_CHARS = 240
# upstream call results that do not count against a deployment: refusals of the request are its sender's fault
_NOT_ERRORS = frozenset({"ok", "upstream_rejected"})
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
Families = Mapping[str, list[Sample]]


class _NotFound(ProxyError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    if not services.runtime.settings.server.admin_ui:
        raise _NotFound("The dashboard is disabled (server.admin_ui: false).")
    return services


def _admin(services: Services, authorization: str | None) -> Caller:
    """The caller if it holds an admin key (any caller when no keys are configured); 401/403 otherwise."""
    caller = services.runtime.keys.authenticate(authorization)
    if not caller.admin:
        raise PermissionDenied("This API key may not open the dashboard; use a key with admin: true.")
    return caller


async def admin_page(request: Request, filename: str) -> Response:
    """One page of /ui for admin keys; the key comes as `Authorization: Bearer` or `?key=`."""
    services = _services(request)
    authorization = request.headers.get("authorization")
    if authorization is None and request.query_params.get("key"):
        authorization = "Bearer " + request.query_params["key"]
    _admin(services, authorization)
    html = await asyncio.to_thread((UI_DIR / filename).read_bytes)
    return Response(html, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


async def page(request: Request) -> Response:
    """GET /ui: the dashboard page."""
    return await admin_page(request, "index.html")


async def asset(request: Request) -> Response:
    """GET /ui/{name}: the page's script and style sheet (static code, no data: not key-protected)."""
    _services(request)
    name = request.path_params.get("name", "")
    if name not in ASSETS:
        raise _NotFound("No such dashboard file.")
    body = await asyncio.to_thread((UI_DIR / name).read_bytes)
    headers = {**SECURITY_HEADERS, "cache-control": "no-cache"}
    return Response(body, media_type=ASSETS[name], headers=headers)


async def snapshot(request: Request) -> Response:
    """GET /ui/api/snapshot: every dashboard number, read from the /metrics registry, plus the audit tail."""
    services = _services(request)
    _admin(services, request.headers.get("authorization"))
    for key, cooling in services.resilience.cooldowns.states().items():
        services.metrics.cooldown.labels(key).set(1 if cooling else 0)  # as GET /metrics does
    data = build_snapshot(services.metrics.registry)
    data["aliases_configured"] = sorted(services.runtime.settings.models)
    audit_path = services.runtime.settings.logging.audit_path
    data["recent"] = await asyncio.to_thread(read_audit_tail, audit_path) if audit_path else []
    data["audit_log"] = audit_path is not None and audit_path.exists()
    return Response(orjson.dumps(data), media_type="application/json", headers={"cache-control": "no-store"})


def _families(registry: CollectorRegistry) -> dict[str, list[Sample]]:
    families: dict[str, list[Sample]] = {}
    for family in registry.collect():
        families[family.name] = [s for s in family.samples if not s.name.endswith("_created")]
    return families


def _by(samples: Iterable[Sample], *labels: str, suffix: str = "_total") -> dict[tuple[str, ...], float]:
    """Sum the samples ending in `suffix` by the given labels."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for s in samples:
        if s.name.endswith(suffix):
            out[tuple(s.labels.get(name, "") for name in labels)] += s.value
    return dict(out)


def _counter(families: Families, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    return _by(families.get(name, []), *labels)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q*count."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bound: report that bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _latency(families: Families) -> dict[str, dict[str, Any]]:
    samples = families.get("guardproxy_request_seconds", [])
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        if s.name.endswith("_bucket"):
            buckets[s.labels.get("alias", "")].append((float(s.labels["le"]), s.value))
    counts, sums = _by(samples, "alias", suffix="_count"), _by(samples, "alias", suffix="_sum")
    out = {}
    for alias, rows in buckets.items():
        rows.sort()
        out[alias] = {
            "count": counts.get((alias,), 0.0),
            "sum": sums.get((alias,), 0.0),
            "p50": quantile(0.5, rows),
            "p95": quantile(0.95, rows),
            "p99": quantile(0.99, rows),
            "buckets": [[b if math.isfinite(b) else "+Inf", c] for b, c in rows],
        }
    return out


def build_snapshot(registry: CollectorRegistry, *, now: float | None = None) -> dict[str, Any]:
    """Every number the dashboard shows, from the same collectors GET /metrics renders."""
    f = _families(registry)
    requests = _counter(f, "guardproxy_requests", "alias", "outcome", "status")
    outcomes: dict[str, float] = defaultdict(float)
    for (_, outcome, _), n in requests.items():
        outcomes[outcome] += n
    deployments = _deployments(f)
    cache = {result: n for (result,), n in _counter(f, "guardproxy_cache", "result").items()}
    lookups = cache.get("hit", 0.0) + cache.get("miss", 0.0)
    tokens = _counter(f, "guardproxy_tokens", "alias", "key")
    in_flight = _by(f.get("guardproxy_in_flight", []), suffix="")
    return {
        "ts": time.time() if now is None else now,
        "requests_total": sum(requests.values()),
        "in_flight": int(in_flight.get((), 0.0)),
        "requests": [
            {"alias": a, "outcome": o, "status": s, "count": n} for (a, o, s), n in sorted(requests.items())
        ],
        "outcomes": dict(outcomes),
        "latency": _latency(f),
        "deployments": deployments,
        "cache": {"results": cache, "hit_ratio": cache.get("hit", 0.0) / lookups if lookups else None},
        "tokens": {
            "spent": sum(tokens.values()),
            "saved": sum(_counter(f, "guardproxy_cache_tokens_saved", "alias").values()),
            "cost_usd": sum(_counter(f, "guardproxy_cost_usd", "alias", "key").values()),
            "by_alias": _sum_first(tokens),
        },
        "repairs": {kind: n for (kind,), n in _counter(f, "guardproxy_repairs", "kind").items()},
        "violations": [
            {"policy": p, "validator": v, "count": n}
            for (p, v), n in sorted(
                _counter(f, "guardproxy_violations", "policy", "validator").items(), key=lambda item: -item[1]
            )
        ],
        "steps": [
            {"policy": p, "step": s, "count": n}
            for (p, s), n in sorted(_counter(f, "guardproxy_ladder_steps", "policy", "step").items())
        ],
    }


def _deployments(f: Families) -> dict[str, dict[str, Any]]:
    """Per deployment: upstream calls by result, errors (anything but ok), retries by reason, cooldown."""
    out: dict[str, dict[str, Any]] = {}

    def row(dep: str) -> dict[str, Any]:
        empty = {
            "calls": 0.0,
            "errors": 0.0,
            "results": {},
            "retries": 0.0,
            "retry_reasons": {},
            "cooling": False,
        }
        return out.setdefault(dep, empty)

    for (dep, result), n in _counter(f, "guardproxy_upstream_calls", "deployment", "result").items():
        d = row(dep)
        d["calls"] += n
        d["errors"] += 0 if result in _NOT_ERRORS else n
        d["results"][result] = n
    for (dep, reason), n in _counter(f, "guardproxy_retries", "deployment", "reason").items():
        row(dep)["retries"] += n
        row(dep)["retry_reasons"][reason] = n
    for (dep,), value in _by(f.get("guardproxy_deployment_cooldown", []), "deployment", suffix="").items():
        row(dep)["cooling"] = value >= 1
    return out


def _sum_first(values: Mapping[tuple[str, ...], float]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, n in values.items():
        out[labels[0]] += n
    return dict(out)


def read_audit_tail(
    path: Path, limit: int = AUDIT_EVENTS, max_bytes: int = AUDIT_TAIL_BYTES
) -> list[dict[str, Any]]:
    """The last `limit` audit events, newest first, from at most the last `max_bytes` of the JSONL file."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read(max_bytes)
    except OSError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line is cut
    events: list[dict[str, Any]] = []
    for line in reversed(lines):
        if len(events) >= limit:
            break
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            events.append(_audit_event(record))
    return events


def _text(value: Any, limit: int = 120) -> str:
    if value is None:
        return ""
    return scrub(value if isinstance(value, str) else orjson.dumps(value).decode())[:limit]


def _audit_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """One audit line (proxy.audit's format) cut to what the page shows; texts scrubbed again."""
    ts, repairs = record.get("ts"), record.get("repairs")
    return {
        "ts": ts if isinstance(ts, int | float) else None,
        "kind": _text(record.get("kind"), 40),
        "request_id": _text(record.get("request_id"), 128),
        "alias": _text(record.get("alias"), 80),
        "policy": _text(record.get("policy"), 80),
        "deployment": _text(record.get("deployment"), 120),
        "validator": _text(record.get("validator"), 60),
        "path": _text(record.get("path"), 120),
        "message": _text(record.get("message"), 240),
        "repairs": [_text(r, 60) for r in repairs] if isinstance(repairs, list) else [],
        "excerpt": _text(record.get("excerpt"), EXCERPT_CHARS),
    }
