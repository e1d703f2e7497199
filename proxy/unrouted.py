"""Answers for requests no route takes: 404 `unsupported_endpoint` under `/v1/` naming the routes served,
405 naming every method the path allows (all the routes on that path, as `Allow` must)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import MethodNotAllowed, ProxyError, UnsupportedEndpoint
from .respond import error_response

__all__ = ["handle_http", "served"]


def served(routes: Iterable[BaseRoute], *, prefix: str = "/v1/") -> list[str]:
    """`METHOD|METHOD /path` for each path under `prefix`, in routing order (HEAD left implicit)."""
    methods: dict[str, list[str]] = {}
    for route in routes:
        if isinstance(route, Route) and route.path.startswith(prefix):
            known = methods.setdefault(route.path, [])
            known.extend(m for m in _methods(route) if m != "HEAD" and m not in known)
    return [f"{'|'.join(names)} {path}" for path, names in methods.items()]


def _methods(route: Route) -> list[str]:
    order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    return sorted(route.methods or (), key=lambda m: (order.index(m) if m in order else len(order), m))


def _allowed(routes: Iterable[BaseRoute], path: str) -> list[str]:
    allowed: list[str] = []
    for route in routes:
        if isinstance(route, Route) and route.path_regex.match(path):
            allowed.extend(m for m in _methods(route) if m not in allowed)
    return allowed


async def handle_http(request: Request, exc: Exception) -> Response:
    """Starlette's 404 / 405 (and any other HTTPException) in the OpenAI error shape."""
    assert isinstance(exc, HTTPException)
    routes = request.app.router.routes
    path = request.url.path
    error: ProxyError
    if exc.status_code == 405:
        allowed = _allowed(routes, path) or [
            m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()
        ]
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {path}; allowed methods: {', '.join(allowed)}."
        )
        error.context_headers = {"allow": ", ".join(allowed)}
    elif exc.status_code == 404 and path.startswith("/v1/"):
        error = UnsupportedEndpoint(
            f"guardproxy does not serve {request.method} {path}. "
            f"Routes served under /v1/: {', '.join(served(routes))}."
        )
    else:
        error = ProxyError(str(exc.detail) if exc.detail else "Not found.", code="not_found")
        error.status_code, error.type = exc.status_code, "invalid_request_error"
        error.context_headers = dict(exc.headers or {})
    return error_response(error)
