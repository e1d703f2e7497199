"""Wiring: the ASGI app (guard, lifecycle, the chat and Responses hot paths), the Starlette app behind it
for every other route, its lifespan and the error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import dashboard, feedback, health, responses, review, routes
from .audit import AuditLog
from .auth import KeyStore
from .cache import CacheBackend, SingleFlight, open_backend
from .cache.memory import MemoryTier
from .errors import AuthenticationFailed, HeadersTooLarge, Overloaded, ProxyError, internal_error
from .frontdoor import HostCheck, check_json_body
from .health_state import close_shared, export_metrics, shared_resilience
from .hits import HitPath
from .lifecycle import RequestLifecycle
from .logs import config_secrets
from .metrics import Metrics
from .openapi import openapi
from .ratelimit import open_rate_limiter
from .records import open_recorder
from .reload import Reloader
from .resilience import Resilience
from .respond import error_response
from .services import Runtime, Services, load_runtime
from .settings import ServerSettings, Settings
from .unrouted import handle_http
from .upstream import Upstream

__all__ = ["GuardProxyApp", "create_app"]

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
# POST routes whose body is JSON: 415 for any other declared type (a cross-site form post is one)
_JSON_PATHS = _CHAT_PATHS | {"/v1/embeddings", "/v1/responses", "/v1/feedback"}
_FRONT_HEADERS = frozenset({b"host", b"content-type", b"authorization", b"x-request-id"})

log = logging.getLogger("guardproxy")


async def _handle_proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    return error_response(exc)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return error_response(internal_error())


class GuardMiddleware:
    """Request ids, header-size limit and load shedding, before any routing or body reading."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        server: ServerSettings,
        metrics: Metrics,
        keys: Callable[[], KeyStore | None],
    ) -> None:
        self.app = app
        self.max_in_flight = server.max_in_flight
        self.max_header_bytes = server.max_header_bytes
        self.hosts = HostCheck(server)
        self.keys = keys  # the current runtime's, read per request (hot reload swaps them)
        self.in_flight = 0
        metrics.in_flight.set_function(lambda: self.in_flight)  # read at scrape time, not counted twice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # the correlation id is always ours: a client-chosen one could collide with, or pose as, another
        # tenant's request in logs, audit and feedback; the client's is kept beside it, and echoed in
        # `x-request-id` as clients expect, while `x-guardproxy-request-id` always carries ours
        request_id = os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID
        state = scope.setdefault("state", {})
        size, headers = _front_headers(scope)
        client_id = _client_request_id(headers.get(b"x-request-id"))
        state["request_id"], state["client_request_id"] = request_id, client_id
        ids = [
            (b"x-request-id", (client_id or request_id).encode()),
            (b"x-guardproxy-request-id", request_id.encode()),
        ]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *ids]
            await send(message)

        if size > self.max_header_bytes:
            await error_response(HeadersTooLarge("The request headers are too large."))(
                scope, receive, send_with_id
            )
            return
        try:
            self.hosts.check(headers.get(b"host"))
            if scope["method"] == "POST" and scope["path"] in _JSON_PATHS:
                check_json_body(headers.get(b"content-type"))
        except ProxyError as refused:
            await error_response(refused)(scope, receive, send_with_id)
            return
        if not self._takes_slot(scope["path"], headers.get(b"authorization"), state):
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

    def _takes_slot(self, path: str, authorization: bytes | None, state: dict[str, object]) -> bool:
        """Whether this request needs an in-flight slot: the API routes, once the caller is authenticated.

        A request without a valid key takes none: its endpoint refuses it from the headers, before
        reading a body, so keyless connections that never send one cannot hold every slot (health,
        metrics and the UI never take one either). The caller found is left in the scope's state with
        the key store that found it (`routes.authenticated`): the endpoint does not authenticate twice."""
        if not (path.startswith("/v1/") or path in _CHAT_PATHS):
            return False
        keys = self.keys()
        if keys is None:
            return True
        try:
            caller = keys.authenticate(authorization.decode("latin-1") if authorization is not None else None)
        except AuthenticationFailed:
            return False
        state["caller"] = (keys, caller)
        return True


def _front_headers(scope: Scope) -> tuple[int, dict[bytes, bytes]]:
    """The headers' total size, and the first of each header checked before routing (`_FRONT_HEADERS`):
    one walk over them."""
    found: dict[bytes, bytes] = {}
    size = 0
    for name, value in scope["headers"]:
        size += len(name) + len(value)
        if name in _FRONT_HEADERS and name not in found:
            found[name] = value
    return size, found


def _client_request_id(value: bytes | None) -> str | None:
    """The client's own `x-request-id`, when it is a short printable string (logged, never trusted)."""
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if 0 < len(text) <= 128 and text.isprintable() else None


class GuardProxyApp:
    """The ASGI application: guard -> lifecycle -> the chat and Responses endpoints directly (the hot paths
    skip Starlette's router, request objects and exception middleware), or Starlette for every other
    route."""

    def __init__(
        self, starlette: Starlette, direct: Mapping[str, ASGIApp], settings: Settings, metrics: Metrics
    ) -> None:
        self.starlette = starlette
        self.state = starlette.state  # `services` lives here once the lifespan has started
        self._direct = direct  # POST path -> its plain-ASGI endpoint
        server = settings.server
        self._server = server  # until the lifespan has loaded the runtime
        lifecycle = RequestLifecycle(
            self._dispatch,
            grace=server.shutdown_grace,
            delay=server.drain_delay,
            body_timeout=self._body_timeout,
        )
        self.state.drain = lifecycle.drain  # /health/ready turns 503 once the drain begins
        self._app = GuardMiddleware(
            lifecycle,
            server=settings.server,
            metrics=metrics,
            keys=self._keys,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    def _keys(self) -> KeyStore | None:
        services: Services | None = getattr(self.state, "services", None)  # None before the lifespan
        return services.runtime.keys if services is not None else None

    def _body_timeout(self) -> float:
        services: Services | None = getattr(self.state, "services", None)  # reloads may change it
        return (services.runtime.settings.server if services is not None else self._server).body_timeout

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._direct.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is not None and scope["method"] == "POST":
            scope["app"] = self.starlette
            await endpoint(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)


def create_app(
    config: Path | Settings | Runtime,
    *,
    upstream: Upstream | None = None,
    cache: CacheBackend | None = None,
    metrics: Metrics | None = None,
    resilience: Resilience | None = None,
    reload_interval: float | None = None,
    freeze_gc: bool = False,
) -> GuardProxyApp:
    """Build the guardproxy app; collaborators may be injected (tests pass real alternatives).

    `reload_interval` overrides `server.reload_interval` (seconds between polls of the config files);
    0 starts no watcher at all (no hot reload, not even on SIGHUP).

    `freeze_gc` (the served app): after start-up, move everything alive into the GC's permanent
    generation, so collections during requests no longer walk the config, policies and imports.
    """
    runtime = config if isinstance(config, Runtime) else load_runtime(config)
    metrics = metrics or Metrics()
    settings = runtime.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        up = upstream or Upstream(limits=settings.limits)
        up.warm([d for alias in settings.models.values() for d in alias.deployments])
        backend = cache or open_backend(
            settings.cache.backend,
            path=settings.cache.path,
            url=settings.cache.url,
            size_limit_mb=settings.cache.size_limit_mb,
            secret=settings.cache.secret,
            # a failed entry authentication is its own series: someone wrote to the cache
            on_error=lambda op, exc: metrics.cache.labels("tampered" if op == "tampered" else "error").inc(),
        )
        hits = None
        if settings.cache.memory_mb and settings.cache.memory_ttl and backend.name != "none":
            backend = MemoryTier(
                backend, max_bytes=settings.cache.memory_mb * 2**20, ttl=settings.cache.memory_ttl
            )
            hits = HitPath(backend)
        audit = AuditLog(
            settings.logging.audit_path,
            max_bytes=settings.logging.audit_max_bytes,
            backups=settings.logging.audit_backups,
            secrets=config_secrets(settings),
        )
        limiter = open_rate_limiter(settings.cache.backend, settings.cache.url)
        records = open_recorder(settings, metrics=metrics, secrets=config_secrets(settings))
        services = Services(
            runtime=runtime,
            upstream=up,
            cache=backend,
            flights=SingleFlight(backend),
            metrics=metrics,
            resilience=resilience or shared_resilience(settings),
            audit=audit,
            limiter=limiter,
            records=records,
            hits=hits,
        )
        app.state.services = services
        # Start-up objects (litellm and friends: ~1M) never die; out of the collector's view, a full
        # collection triggered by any thread (validation in a worker) pauses the loop ~15 ms, not ~100.
        gc.freeze()
        export_metrics(metrics.registry, lambda: services.resilience)
        if not settings.auth.keys:
            log.warning("no auth.keys configured: every caller may use every model (local development only)")
        warming = asyncio.create_task(up.warm_streaming())  # in the background: start-up is not delayed
        watcher = None
        if settings.config_path is not None and reload_interval != 0:
            reloader = Reloader(
                settings.config_path,
                lambda: services.runtime,
                services.swap,
                interval=reload_interval,
                on_failure=metrics.reload_failures.inc,
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
            await records.close()
            await close_shared(services.resilience)

    chat = routes.ChatEndpoint()
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),  # reached only for 405s
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", routes.embeddings, methods=["POST"]),
            Route("/v1/responses", responses.create_response, methods=["POST"]),  # reached only for 405s
            Route("/v1/responses/{response_id}", responses.get_response, methods=["GET"]),
            Route("/v1/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/input_items", responses.list_input_items, methods=["GET"]),
            Route("/v1/models", routes.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", routes.get_model, methods=["GET"]),
            Route("/v1/feedback", feedback.post_feedback, methods=["POST"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/health/live", health.live, methods=["GET"]),
            Route("/health/ready", health.ready, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/ui", dashboard.page, methods=["GET"]),
            Route("/ui/api/snapshot", dashboard.snapshot, methods=["GET"]),
            Route("/ui/review", review.page, methods=["GET"]),
            Route("/ui/api/review", review.queue, methods=["GET"]),
            Route("/ui/{name}", dashboard.asset, methods=["GET"]),
        ],
        exception_handlers={
            ProxyError: _handle_proxy_error,
            HTTPException: handle_http,  # 404 unsupported_endpoint under /v1/, 405 with every method
            Exception: _handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # a redirect would echo the client's Host header
    direct = {**dict.fromkeys(_CHAT_PATHS, chat), "/v1/responses": responses.create_response}
    return GuardProxyApp(app, direct, settings, metrics)
