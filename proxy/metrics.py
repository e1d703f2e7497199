"""Prometheus metrics, one registry per app (no process-global collectors)."""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .errors import UpstreamFailure
from .judge import Judgement

__all__ = ["Labelled", "Metrics"]

M = TypeVar("M", Counter, Gauge, Histogram)


class Labelled(Generic[M]):
    """A labelled metric whose child per label set is looked up once: prometheus' own `labels()`
    validates and locks on every call, a visible share of a request's CPU. Label sets are bounded by
    the config (aliases, keys, deployments, policies, outcomes), so the memo is too."""

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    """Every series of the contract's section 8, plus retries, fallbacks, cooldowns, tokens and cost."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Labelled(
            Counter(
                "guardproxy_requests",
                "Requests answered.",
                ["alias", "outcome", "status", "route"],
                registry=r,
            )
        )
        self.latency = Labelled(
            Histogram(
                "guardproxy_request_seconds",
                "Request latency.",
                ["alias"],
                registry=r,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            )
        )
        self.upstream = Labelled(
            Counter("guardproxy_upstream_calls", "Upstream calls.", ["deployment", "result"], registry=r)
        )
        self.cache = Labelled(
            Counter("guardproxy_cache", "Cache lookups and stores.", ["result"], registry=r)
        )
        self.repairs = Labelled(
            Counter("guardproxy_repairs", "Deterministic repairs applied.", ["kind"], registry=r)
        )
        self.violations = Labelled(
            Counter("guardproxy_violations", "Policy violations found.", ["policy", "validator"], registry=r)
        )
        self.in_flight = Gauge("guardproxy_in_flight", "Requests being served.", registry=r)
        self.retries = Labelled(
            Counter("guardproxy_retries", "Upstream retries.", ["deployment", "reason"], registry=r)
        )
        self.steps = Labelled(
            Counter("guardproxy_ladder_steps", "Ladder steps taken.", ["policy", "step"], registry=r)
        )
        self.cooldown = Labelled(
            Gauge(
                "guardproxy_deployment_cooldown",
                "1 while a deployment is cooling down.",
                ["deployment"],
                registry=r,
            )
        )
        self.tokens = Labelled(
            Counter("guardproxy_tokens", "Tokens spent upstream, all attempts.", ["alias", "key"], registry=r)
        )
        self.cost = Labelled(
            Counter(
                "guardproxy_cost_usd",
                "US dollars spent upstream, all attempts.",
                ["alias", "key"],
                registry=r,
            )
        )
        self.reload_failures = Counter(
            "guardproxy_config_reload_failures",
            "Hot reloads refused (invalid or hostile files); the previous config kept serving.",
            registry=r,
        )
        self.tokens_saved = Labelled(
            Counter(
                "guardproxy_cache_tokens_saved",
                "Tokens not spent thanks to cache hits.",
                ["alias"],
                registry=r,
            )
        )

        self.feedback = Labelled(
            Counter(
                "guardproxy_feedback",
                "Feedback on answers (POST /v1/feedback); score is good, bad or neutral.",
                ["alias", "policy", "deployment", "score"],
                registry=r,
            )
        )
        self.records = Labelled(
            Counter(
                "guardproxy_records",
                "Answers written to the record store (stored), or not (dropped: queue full; error).",
                ["result"],
                registry=r,
            )
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def events(self, policy: str) -> _LadderMetrics:
        return _LadderMetrics(self, policy)


class _LadderMetrics:
    """The ladder's event sink feeding the metrics."""

    def __init__(self, metrics: Metrics, policy: str) -> None:
        self._m = metrics
        self._policy = policy

    def upstream_call(self, deployment: str, result: str) -> None:
        self._m.upstream.labels(deployment, result).inc()

    def retry(self, deployment: str, error: UpstreamFailure) -> None:
        self._m.retries.labels(deployment, error.code or "error").inc()

    def step(self, kind: str, deployment: str, judgement: Judgement | None) -> None:
        self._m.steps.labels(self._policy, kind).inc()
        if judgement is None:
            return
        if kind == "violation":
            for v in judgement.violations + judgement.rejected + judgement.flagged:
                self._m.violations.labels(self._policy, v.validator).inc()
        elif kind == "repair":
            for change in judgement.repairs:
                self._m.repairs.labels(change.split(":", 1)[0]).inc()
