"""Liveness and readiness for load balancers and orchestrators.

`/health/live` (like `/health`) is 200 whenever the process answers at all: restart it only when it
does not. `/health/ready` is 200 only when this replica should get new requests: its config is
loaded, it is not draining (a SIGTERM turns it not-ready first, see `proxy.shutdown`), and its cache
backend is reachable (or deliberately `none`). Otherwise 503, and the body names the failed check:
`{"status": "not_ready", "checks": {"config": "ok", "draining": "draining", "cache": "ok"}}`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .cache.memory import MemoryTier
from .shutdown import Drain

__all__ = ["live", "ready"]

_PROBE_KEY = "guardproxy:ready-probe"  # never stored: a `get` of it only proves Redis answers


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    checks = {"config": "ok", "draining": "ok", "cache": "ok"}
    services: Any = getattr(request.app.state, "services", None)
    drain: Drain | None = getattr(request.app.state, "drain", None)
    if services is None:
        checks["config"] = "not loaded"
    if drain is not None and drain.draining:
        checks["draining"] = "draining"
    if services is not None:
        checks["cache"] = await _cache_check(services.cache)
    ok = all(v in ("ok", "none") for v in checks.values())
    status = 200 if ok else 503
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=status)


async def _cache_check(backend: Any) -> str:
    """`ok`, `none` (caching deliberately off) or what is wrong with the backend."""
    if isinstance(backend, MemoryTier):  # the probe asks the storage itself, never a copy in memory
        backend = backend.backend
    name = getattr(backend, "name", "")
    if name == "none":
        return "none"
    if name == "redis":
        await backend.get(_PROBE_KEY)  # one short-timeout round trip; a failure starts the backoff
        return "ok" if backend.available else "redis unreachable"
    error = getattr(backend, "open_error", None)
    return "ok" if error is None else f"unavailable: {str(error)[:200]}"
