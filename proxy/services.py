"""Per-app state: the loaded config (swapped whole on reload) and the long-lived collaborators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from validators import Registry, default_registry

from .audit import AuditLog
from .auth import KeyStore
from .cache import CacheBackend, SingleFlight
from .metrics import Metrics
from .policy import Policy, load_policies
from .ratelimit import Limiter, RateLimiter
from .resilience import Resilience
from .settings import Settings, load_settings
from .upstream import Upstream

__all__ = ["Runtime", "Services", "load_runtime"]


@dataclass(frozen=True)
class Runtime:
    """One consistent loaded configuration; requests keep the one they started with."""

    settings: Settings
    policies: Mapping[str, Policy]
    keys: KeyStore
    registry: Registry
    resilience: Resilience


def load_runtime(
    config: Path | Settings, *, registry: Registry | None = None, resilience: Resilience | None = None
) -> Runtime:
    """Load settings and every policy; ConfigError lists all problems."""
    settings = config if isinstance(config, Settings) else load_settings(config)
    registry = registry or default_registry()
    required = {settings.default_policy} | {a.policy for a in settings.models.values() if a.policy}
    policies = load_policies(settings.policies_dir, registry, required=sorted(required))
    return Runtime(
        settings, policies, KeyStore(settings.auth.keys), registry, resilience or Resilience(settings.retry)
    )


@dataclass
class Services:
    """What the lifespan opens and closes; `runtime` is replaced whole by a reload."""

    runtime: Runtime
    upstream: Upstream
    cache: CacheBackend
    flights: SingleFlight
    metrics: Metrics
    audit: AuditLog = field(default_factory=lambda: AuditLog(None, max_bytes=1024, backups=0))
    limiter: Limiter = field(default_factory=RateLimiter)
