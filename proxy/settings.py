"""config.yaml as frozen, typed objects, loaded once by `load_settings` and passed in."""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .yamlfile import ConfigError, Located, Problem, did_you_mean, load_yaml

__all__ = [
    "ApiKey",
    "AuthSettings",
    "CacheSettings",
    "Deployment",
    "LimitSettings",
    "LogSettings",
    "ModelAlias",
    "ResponsesSettings",
    "RetrySettings",
    "ServerSettings",
    "Settings",
    "load_settings",
    "validate_model",
]


class Frozen(BaseModel):
    """Base of every config object: immutable, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_in_flight: int = Field(256, ge=1)
    shutdown_grace: float = Field(10.0, ge=0)
    # after SIGTERM: seconds of not-ready while still serving, so a load balancer takes us out first
    drain_delay: float = Field(5.0, ge=0, le=300)
    # seconds between looks at config.yaml and the policies folder; an edit applies once it has stayed the
    # same across two looks, so within about twice this (plus the load)
    reload_interval: float = Field(0.5, gt=0, le=60)
    keepalive_seconds: float = Field(10.0, gt=0)
    body_timeout: float = Field(30.0, gt=0)  # 408 when the body is not complete by then (slowloris)
    admin_ui: bool = True
    # /metrics names keys, aliases and spend: with keys configured only an admin key reads it
    # (`none`: open, for a scraper on a private network); without keys it is always open
    metrics_auth: Literal["admin", "none"] = "admin"
    # Host header names served, any port ("*": any). Empty: the loopback names (localhost, 127.0.0.1,
    # [::1]) when `host` is a loopback address, else any; other names get 421 (DNS rebinding)
    allowed_hosts: tuple[str, ...] = ()


class LimitSettings(Frozen):
    """Caps on request shape, answered with 400 before any work."""

    max_messages: int = Field(2048, ge=1)
    max_tools: int = Field(128, ge=0)
    max_n: int = Field(8, ge=1)
    max_tokens: int = Field(1_000_000, ge=1)
    max_schema_depth: int = Field(32, ge=1)
    max_stop: int = Field(4, ge=1)
    # time one request may spend validating and repairing outputs (all attempts); over it: 422
    validation_ms: float = Field(500.0, gt=0)
    # estimated bytes of compiled schemas kept (LRU); one larger schema is compiled per use, never kept
    schema_cache_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    # one upstream body (decompressed) or one stream's assembled output; past it: a failed attempt
    max_upstream_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # passthrough streams: seconds without a chunk, and seconds for the whole stream
    stream_idle_timeout: float = Field(60.0, gt=0)
    stream_max_seconds: float = Field(600.0, gt=0)
    # passthrough streams: the longest run that could still be a match held back (characters); a longer
    # one is never sent (redacted, or the stream ends)
    stream_hold_chars: int = Field(64 * 1024, ge=1024)
    # one upstream SSE line (one stream chunk), in bytes; past it: a failed attempt
    max_sse_line_bytes: int = Field(1024 * 1024, ge=1024)


class ApiKey(Frozen):
    """A client key; only its SHA-256 is kept (`key` is hashed at load and dropped)."""

    name: str
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    models: tuple[str, ...] = ("*",)
    allow_policy_override: bool = False
    admin: bool = False
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _hash_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "key" in data:
            data = dict(data)
            key = data.pop("key")
            if "key_sha256" in data:
                raise ValueError("give either key or key_sha256, not both")
            if not isinstance(key, str) or not key:
                raise ValueError("key must be a non-empty string")
            data["key_sha256"] = hashlib.sha256(key.encode()).hexdigest()
        if isinstance(data, Mapping) and isinstance(data.get("key_sha256"), str):
            data = {**data, "key_sha256": data["key_sha256"].lower()}
        return data


class AuthSettings(Frozen):
    keys: tuple[ApiKey, ...] = ()


class Deployment(Frozen):
    """One upstream model of an alias's chain."""

    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key: str | None = Field(None, repr=False)
    timeout: float = Field(30.0, gt=0)
    transport: Literal["auto", "direct", "litellm"] = "auto"
    # `responses`: a request that arrived on /v1/responses reaches this (direct, OpenAI-wire) deployment
    # at the provider's own /v1/responses; chat completions requests still go to /chat/completions
    api: Literal["chat", "responses"] = "chat"
    params: dict[str, Any] = Field(default_factory=dict)
    input_cost_per_token: float | None = Field(None, ge=0)
    output_cost_per_token: float | None = Field(None, ge=0)
    mock: dict[str, Any] = Field(default_factory=dict)

    @property
    def provider(self) -> str:
        """The litellm provider prefix (`openai` of `openai/gpt-4o`), or `` when absent."""
        return self.model.split("/", 1)[0] if "/" in self.model else ""

    @property
    def wire_model(self) -> str:
        """The model name the provider receives (prefix removed)."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model


class ModelAlias(Frozen):
    policy: str | None = None
    deployments: tuple[Deployment, ...] = Field(min_length=1)


class RetrySettings(Frozen):
    attempts: int = Field(3, ge=1, le=20)
    initial_backoff: float = Field(0.5, ge=0)
    max_backoff: float = Field(8.0, ge=0)
    deadline: float = Field(60.0, gt=0)
    budget_ratio: float = Field(0.2, ge=0, le=10)
    budget_min: int = Field(3, ge=0)
    budget_window: float = Field(10.0, gt=0)
    cooldown_failures: int = Field(5, ge=1)
    cooldown_seconds: float = Field(30.0, ge=0)


class CacheSettings(Frozen):
    backend: Literal["disk", "redis", "none"] = "disk"
    path: Path = Path(".guardproxy/cache")
    url: str = "redis://127.0.0.1:6379/0"
    ttl: float = Field(86400, ge=0)
    size_limit_mb: int = Field(1024, ge=1)
    scope: Literal["key", "global"] = "key"
    lock_ttl: float = Field(30.0, gt=0)
    # the per-process memory tier in front of the backend (proxy.cache.memory): its size (0: none), and
    # how long a copy is served without asking the backend (the bound on seeing another process's
    # `cache clear`, feedback eviction or expiry)
    memory_mb: int = Field(64, ge=0)
    memory_ttl: float = Field(1.0, ge=0, le=60)
    # HMAC key signing every entry. Unset: disk generates one into its folder (0600); redis refuses to
    # start, since replicas must share it and nothing they share is secret enough to derive it from.
    secret: str | None = Field(None, min_length=16, repr=False)

    @model_validator(mode="after")
    def _redis_needs_secret(self) -> CacheSettings:
        if self.backend == "redis" and self.secret is None:
            raise ValueError(
                "cache.secret is required with backend redis (the same on every replica,"
                " e.g. secret: ${GUARDPROXY_CACHE_SECRET}, at least 16 characters)"
            )
        return self


class LogSettings(Frozen):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"
    audit_path: Path | None = Path(".guardproxy/audit.jsonl")
    audit_max_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    audit_backups: int = Field(5, ge=0)


class ResponsesSettings(Frozen):
    ttl: float = Field(2592000, ge=0)  # seconds a stored /v1/responses answer is kept (store: true)
    # with `cache.backend: none`: MiB of stored responses kept in this process's memory (oldest out first)
    memory_mb: int = Field(64, ge=1)


class Settings(Frozen):
    """The whole config.yaml, paths already resolved against its folder."""

    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    models: dict[str, ModelAlias] = Field(default_factory=dict)
    retry: RetrySettings = RetrySettings()
    cache: CacheSettings = CacheSettings()
    logging: LogSettings = LogSettings()
    responses: ResponsesSettings = ResponsesSettings()
    # what the feedback / review store keeps (proxy.records); a policy's own `record:` overrides it
    record: Literal["all", "failures", "feedback", "none"] = "failures"
    record_ttl: float = Field(604800, gt=0)  # seconds a recorded answer is kept
    # answers waiting to be written to the record store, per process; past it new ones are dropped
    # (counted in guardproxy_records_total{result="dropped"})
    record_queue: int = Field(1000, ge=1)
    policies_dir: Path = Path("policies")
    default_policy: str = "default"
    config_path: Path | None = None

    @field_validator("models")
    @classmethod
    def _aliases(cls, value: dict[str, ModelAlias]) -> dict[str, ModelAlias]:
        for alias in value:
            if not alias or alias != alias.strip():
                raise ValueError(f"invalid alias name {alias!r}")
        return value

    def resolved(self, base: Path) -> Settings:
        """A copy with relative paths resolved against `base`."""

        def res(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else (base / p))

        return self.model_copy(
            update={
                "policies_dir": res(self.policies_dir),
                "cache": self.cache.model_copy(update={"path": res(self.cache.path)}),
                "logging": self.logging.model_copy(update={"audit_path": res(self.logging.audit_path)}),
            }
        )


def load_settings(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate config.yaml; raise ConfigError listing every problem as FILE:LINE."""
    located = load_yaml(path, environ=environ)
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([located.problem((), "the config must be a mapping")])
    data.pop("$schema", None)
    settings = validate_model(Settings, data, located)
    return settings.resolved(path.resolve().parent).model_copy(update={"config_path": path.resolve()})


M = typing.TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, located: Located, prefix: tuple[str | int, ...] = ()) -> M:
    """Validate `data` into `model`, turning pydantic errors into FILE:LINE problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems: list[Problem] = []
        errors = exc.errors()
        nested = {tuple(e["loc"][:i]) for e in errors for i in range(len(e["loc"]))}
        for err in errors:
            if err["type"] == "too_short" and tuple(err["loc"]) in nested:
                continue  # a list whose items failed reports itself as empty too
            loc = prefix + tuple(
                p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
            )
            problems.append(located.problem(loc, _message(model, err, loc[len(prefix) :])))
        raise ConfigError(problems) from None


def _message(model: type[BaseModel], err: Any, loc: tuple[str | int, ...]) -> str:
    if err["type"] == "extra_forbidden" and loc:
        key = str(loc[-1])
        fields = _fields_at(model, loc[:-1])
        return f"unknown key '{key}'{did_you_mean(key, fields)}"
    msg = str(err["msg"])
    return msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg


def _fields_at(model: Any, loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model found by walking `loc` from `model`."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            args = [a for a in typing.get_args(current) if a is not Ellipsis]
            current = args[-1] if args else None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Optional/Union to reach a model class when there is one."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return tp
