"""Per-app state: the loaded config (swapped whole on reload) and the long-lived collaborators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from validators import Registry, SchemaCache, default_registry

from .audit import AuditLog
from .auth import KeyStore
from .cache import CacheBackend, SingleFlight
from .metrics import Metrics
from .policy import Policy, load_policies
from .ratelimit import Limiter, RateLimiter
from .records import Recorder
from .resilience import Resilience
from .settings import Settings, load_settings
from .upstream import Upstream

if TYPE_CHECKING:
    from .hits import HitPath

__all__ = ["Runtime", "Services", "load_runtime"]


@dataclass(frozen=True)
class Runtime:
    """One consistent loaded configuration; requests keep the one they started with."""

    settings: Settings
    policies: Mapping[str, Policy]
    keys: KeyStore
    registry: Registry


def load_runtime(config: Path | Settings, *, registry: Registry | None = None) -> Runtime:
    """Load settings and every policy; ConfigError lists all problems."""
    settings = config if isinstance(config, Settings) else load_settings(config)
    schemas = SchemaCache(max_bytes=settings.limits.schema_cache_bytes)
    registry = registry or default_registry(schema_cache=schemas)
    required = {settings.default_policy} | {a.policy for a in settings.models.values() if a.policy}
    policies = load_policies(settings.policies_dir, registry, required=sorted(required))
    return Runtime(settings, policies, KeyStore(settings.auth.keys), registry)


@dataclass
class Services:
    """What the lifespan opens and closes; `runtime` is replaced whole by a reload."""

    runtime: Runtime
    upstream: Upstream
    cache: CacheBackend
    flights: SingleFlight
    metrics: Metrics
    resilience: Resilience  # cooldowns and the retry budget: per app, kept across reloads
    audit: AuditLog = field(default_factory=lambda: AuditLog(None, max_bytes=1024, backups=0))
    limiter: Limiter = field(default_factory=RateLimiter)
    records: Recorder | None = None  # the feedback / review store (proxy.records); None: not recording
    hits: HitPath | None = None  # cache hits served from memory (proxy.hits); None: no memory tier

    def swap(self, runtime: Runtime) -> None:
        """Serve a reloaded configuration; the health state stays, with the new `retry` numbers."""
        self.runtime = runtime
        self.resilience.configure(runtime.settings.retry)
