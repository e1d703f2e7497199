"""What the request path hands back (`Answer`: the response to send and its metadata), and the
accounting written once that answer has ended (`Ledger`): request and token metrics, latency, the
`tpm` spend and the access-log line, with the tokens, attempts, outcome and status the answer really
ended with. A stream's metadata is final only after its last byte (or the client's disconnect), so
nothing here runs before the body has been sent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .access_log import log_request
from .auth import Caller
from .errors import ProxyError
from .outcome import Outcome
from .respond import AnswerMeta, error_response
from .services import Services

__all__ = ["Answer", "Ledger"]

log = logging.getLogger("guardproxy")


@dataclass
class Answer:
    """A response and its metadata; `meta` keeps filling in while a stream is sent."""

    response: Response
    meta: AnswerMeta | None = None
    error: ProxyError | None = None

    @classmethod
    def failed(cls, exc: ProxyError, meta: AnswerMeta | None = None) -> Answer:
        """The error answer, with the headers of the request it ended."""
        if meta is not None:
            meta.status = exc.status_code
            meta.outcome = Outcome.REJECTED if exc.status_code == 422 else Outcome.ERROR
        context = meta.headers() if meta is not None else None
        return cls(error_response(exc, context=context), meta, exc)

    @property
    def status(self) -> int:
        """How the answer ended: an in-band error's status, 499 for a client gone, else the HTTP one."""
        if self.meta is not None and self.meta.status is not None:
            return self.meta.status
        return self.response.status_code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.response(scope, receive, send)


@dataclass
class Ledger:
    """One request's accounting, opened when it arrives and closed when its answer has ended."""

    services: Services
    route: str  # the `route` label of the request metrics: chat, responses, embeddings
    method: str
    path: str
    request_id: str = ""
    client_request_id: str | None = None
    alias: str = ""
    caller: Caller | None = None
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def open(cls, services: Services, scope: Scope, route: str) -> Ledger:
        state = scope.get("state", {})
        return cls(
            services,
            route,
            scope.get("method", "POST"),
            scope["path"],
            state.get("request_id", ""),
            state.get("client_request_id"),  # the client's x-request-id, if any
        )

    async def close(self, answer: Answer | None, *, status: int | None = None) -> None:
        """Account for the ended answer (`status` overrides: 499 when the client left first)."""
        meta = answer.meta if answer is not None else None
        status = status or (answer.status if answer is not None else 500)
        outcome = str(meta.outcome) if meta is not None else Outcome.PASS
        if status >= 400 or outcome == Outcome.STREAMING:  # a stream still `streaming` never ended
            outcome = Outcome.REJECTED if status == 422 else Outcome.ERROR
        latency = time.perf_counter() - self.started
        metrics, tokens = self.services.metrics, meta.tokens if meta is not None else 0
        metrics.requests.labels(self.alias, outcome, str(status), self.route).inc()
        metrics.latency.labels(self.alias).observe(latency)
        if self.caller is not None and tokens:  # a 422's attempts were paid for too
            metrics.tokens.labels(self.alias, self.caller.name).inc(tokens)
            if meta is not None and meta.cost:
                metrics.cost.labels(self.alias, self.caller.name).inc(meta.cost)
            try:
                await self.services.limiter.spend(self.caller.name, tokens)
            except Exception:  # noqa: BLE001 - the answer has been sent; a limiter fault must not raise
                log.exception("rate-limit spend failed")
        log_request(
            request_id=self.request_id,
            client_request_id=self.client_request_id,
            method=self.method,
            path=self.path,
            key=self.caller.name if self.caller is not None else None,
            alias=self.alias,
            policy=meta.policy if meta is not None else None,
            deployment=meta.deployment if meta is not None else None,
            outcome=outcome,
            attempts=meta.attempts if meta is not None else 0,
            cache=meta.cache if meta is not None else None,
            status=status,
            latency_ms=latency * 1000,
            tokens=tokens,
            cost=meta.cost if meta is not None else None,
        )
