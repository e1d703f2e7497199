"""One chat request as the request path sees it: who asks, for which alias under which policy, the cache
mode and key, the events sink and the answer's metadata. Built once by `pipeline.handle_chat`; the
ladder and passthrough streams read it instead of long parameter lists."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from validators import RequestContext, Validator

from .audit import AuditEvents
from .auth import Caller
from .cache import encode_entry
from .cache.entry import mentions_secret
from .chain import Chain
from .logs import config_secrets
from .policy import Policy
from .respond import AnswerMeta
from .services import Runtime, Services
from .settings import ModelAlias
from .wire import ChatRequest

if TYPE_CHECKING:
    from .responses.native import NativeRequest

__all__ = ["CacheMode", "ChatContext", "cache_mode"]

_log = logging.getLogger("guardproxy.cache")


@dataclass(frozen=True)
class CacheMode:
    read: bool
    write: bool
    label: str  # the x-guardproxy-cache value on a miss


_BYPASS = CacheMode(False, False, "bypass")
_REFRESH = CacheMode(False, True, "refresh")
_READ_WRITE = CacheMode(True, True, "miss")


def cache_mode(cache_control: str, *, enabled: bool) -> CacheMode:
    """What `Cache-Control` and the config allow for this request."""
    if not enabled:
        return _BYPASS
    if not cache_control:
        return _READ_WRITE
    directives = {d.strip().lower() for d in cache_control.split(",")}
    if "no-store" in directives:
        return _BYPASS
    if "no-cache" in directives:
        return _REFRESH
    return _READ_WRITE


@dataclass
class ChatContext:
    """Everything one chat request carries down the path (`meta` fills in as it goes)."""

    services: Services
    runtime: Runtime
    caller: Caller
    chat: ChatRequest
    alias: ModelAlias
    policy: Policy
    judge: RequestContext  # what the validators need from the request
    validators: Sequence[Validator]
    cache: CacheMode
    meta: AnswerMeta
    events: AuditEvents
    request_id: str = ""
    chain: Chain | None = None  # this request's walk, once it made one (a cache hit or follower: none)
    # a /v1/responses request to an alias with `api: responses` deployments
    native: NativeRequest | None = None

    @property
    def key(self) -> str:
        return self.meta.cache_key

    @property
    def ttl(self) -> float:
        ttl = self.policy.spec.cache.ttl
        return ttl if ttl is not None else self.runtime.settings.cache.ttl

    def new_chain(self) -> Chain:
        """The walk over the alias's deployments (its deadline starts now)."""
        self.chain = Chain(
            self.chat.model,
            self.alias.deployments,
            resilience=self.services.resilience,
            events=self.events,
            max_attempts=self.policy.spec.max_attempts,
        )
        return self.chain

    def fill_attempts(self) -> None:
        """What this request's own upstream calls cost, onto the meta."""
        if self.chain is not None:
            self.chain.attempts.fill(self.meta)

    async def store(
        self, completion: dict[str, Any], *, outcome: str, deployment: str, repairs: Sequence[str]
    ) -> None:
        """Store a final answer under the request's key (when the cache mode writes) and count it."""
        if not self.cache.write:
            return
        services = self.services
        entry = encode_entry(
            response=completion, deployment=deployment, outcome=outcome, repairs=repairs, created=time.time()
        )
        if mentions_secret(entry, config_secrets(self.runtime.settings)):
            # An upstream echoed a provider key: replaying it to every later caller would widen the leak.
            _log.warning("answer from %s holds a configured provider key: not cached", deployment)
            services.metrics.cache.labels("withheld").inc()
            return
        stored = await services.cache.set(self.key, entry, self.ttl)
        services.metrics.cache.labels("store" if stored else "error").inc()
