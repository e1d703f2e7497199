"""Wiring: the ASGI app (guard, lifecycle, the chat hot path), the Starlette app behind it for every other
route, its lifespan and the error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import dashboard, routes
from .audit import AuditLog
from .cache import CacheBackend, SingleFlight, open_backend
from .errors import HeadersTooLarge, Overloaded, ProxyError, internal_error
from .lifecycle import RequestLifecycle
from .logs import config_secrets
from .metrics import Metrics
from .openapi import openapi
from .ratelimit import open_rate_limiter
from .reload import Reloader
from .respond import error_response
from .services import Runtime, Services, load_runtime
from .settings import Settings
from .upstream import Upstream

__all__ = ["GuardProxyApp", "create_app"]

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})

log = logging.getLogger("guardproxy")


async def _handle_proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    return error_response(exc)


async def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = ProxyError(str(exc.detail) if exc.detail else "Not found.", code="not_found")
    error.status_code, error.type = exc.status_code, "invalid_request_error"
    error.context_headers = dict(exc.headers or {})  # 405 keeps its Allow header
    return error_response(error)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return error_response(internal_error())


class GuardMiddleware:
    """Request ids, header-size limit and load shedding, before any routing or body reading."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int, max_header_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_header_bytes = max_header_bytes
        self.in_flight = 0
        metrics.in_flight.set_function(lambda: self.in_flight)  # read at scrape time, not counted twice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        rid = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        if sum(len(k) + len(v) for k, v in scope["headers"]) > self.max_header_bytes:
            await error_response(HeadersTooLarge("The request headers are too large."))(
                scope, receive, send_with_id
            )
            return
        if not scope["path"].startswith("/v1/"):  # health, metrics and the UI take no slot
            await self.app(scope, receive, send_with_id)
            return
        if self.in_flight >= self.max_in_flight:
            exc = Overloaded("guardproxy is at its concurrency limit; retry shortly.", retry_after=1)
            await error_response(exc)(scope, receive, send_with_id)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight -= 1


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return str(text)
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


class GuardProxyApp:
    """The ASGI application: guard -> lifecycle -> the chat endpoint directly (the hot path skips
    Starlette's router, request objects and exception middleware), or Starlette for every other route."""

    def __init__(self, starlette: Starlette, chat: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.starlette = starlette
        self.state = starlette.state  # `services` lives here once the lifespan has started
        self._chat = chat
        self._app = GuardMiddleware(
            RequestLifecycle(self._dispatch, grace=settings.server.shutdown_grace),
            max_in_flight=settings.server.max_in_flight,
            max_header_bytes=settings.server.max_header_bytes,
            metrics=metrics,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in _CHAT_PATHS:
            scope["app"] = self.starlette
            await self._chat(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)


def create_app(
    config: Path | Settings | Runtime,
    *,
    upstream: Upstream | None = None,
    cache: CacheBackend | None = None,
    metrics: Metrics | None = None,
    reload_interval: float = 1.0,
    freeze_gc: bool = False,
) -> GuardProxyApp:
    """Build the guardproxy app; collaborators may be injected (tests pass real alternatives).

    `freeze_gc` (the served app): after start-up, move everything alive into the GC's permanent
    generation, so collections during requests no longer walk the config, policies and imports.
    """
    runtime = config if isinstance(config, Runtime) else load_runtime(config)
    metrics = metrics or Metrics()
    settings = runtime.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        up = upstream or Upstream()
        up.warm([d for alias in settings.models.values() for d in alias.deployments])
        backend = cache or open_backend(
            settings.cache.backend,
            path=settings.cache.path,
            url=settings.cache.url,
            size_limit_mb=settings.cache.size_limit_mb,
            on_error=lambda op, exc: metrics.cache.labels("error").inc(),
        )
        audit = AuditLog(
            settings.logging.audit_path,
            max_bytes=settings.logging.audit_max_bytes,
            backups=settings.logging.audit_backups,
            secrets=config_secrets(settings),
        )
        limiter = open_rate_limiter(settings.cache.backend, settings.cache.url)
        services = Services(
            runtime=runtime,
            upstream=up,
            cache=backend,
            flights=SingleFlight(backend),
            metrics=metrics,
            audit=audit,
            limiter=limiter,
        )
        app.state.services = services
        if not settings.auth.keys:
            log.warning("no auth.keys configured: every caller may use every model (local development only)")
        warming = asyncio.create_task(up.warm_streaming())  # in the background: start-up is not delayed
        watcher = None
        if settings.config_path is not None and reload_interval > 0:
            reloader = Reloader(
                settings.config_path,
                lambda: services.runtime,
                lambda fresh: setattr(services, "runtime", fresh),
                interval=reload_interval,
            )
            app.state.reloader = reloader
            watcher = asyncio.create_task(reloader.run())
        if freeze_gc:  # a serving process: what start-up built lives forever, keep it out of every GC pass
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            warming.cancel()
            if watcher is not None:
                watcher.cancel()
            await up.close()
            await backend.close()
            audit.close()
            await limiter.close()

    chat = routes.ChatEndpoint()
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),  # reached only for 405s
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", routes.embeddings, methods=["POST"]),
            Route("/v1/models", routes.list_models, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/ui", dashboard.page, methods=["GET"]),
            Route("/ui/api/snapshot", dashboard.snapshot, methods=["GET"]),
            Route("/ui/{name}", dashboard.asset, methods=["GET"]),
        ],
        exception_handlers={
            ProxyError: _handle_proxy_error,
            HTTPException: _handle_http,
            Exception: _handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # a redirect would echo the client's Host header
    return GuardProxyApp(app, chat, settings, metrics)
