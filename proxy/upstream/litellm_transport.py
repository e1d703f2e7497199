"""The litellm transport; the only place guardproxy imports litellm, and only when a deployment needs it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Any

from ..errors import (
    UpstreamAuthFailed,
    UpstreamFailure,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamTransient,
    UpstreamUnreachable,
)
from ..redaction import scrub
from ..settings import Deployment
from .bounded import MAX_SSE_LINE
from .direct import (
    DEFAULT_BASES,
    DEFAULT_MAX_BYTES,
    operator_params,
    request_caused,
    retry_after_from,
    without_markup,
)

__all__ = ["EXCEPTION_MAP", "LitellmTransport", "map_litellm_exception"]

# litellm exception class name -> our failure class; looked up along the exception's MRO.
EXCEPTION_MAP: Mapping[str, type[UpstreamFailure]] = {
    "ContextWindowExceededError": UpstreamRejected,
    "BadRequestError": UpstreamRejected,
    "InvalidRequestError": UpstreamRejected,
    "UnsupportedParamsError": UpstreamRejected,
    "ContentPolicyViolationError": UpstreamRejected,
    "NotFoundError": UpstreamRejected,
    "UnprocessableEntityError": UpstreamRejected,
    "AuthenticationError": UpstreamAuthFailed,
    "PermissionDeniedError": UpstreamAuthFailed,
    "RateLimitError": UpstreamRateLimited,
    "Timeout": UpstreamTimeout,
    "APITimeoutError": UpstreamTimeout,
    "APIConnectionError": UpstreamTransient,
    "InternalServerError": UpstreamTransient,
    "ServiceUnavailableError": UpstreamTransient,
    "BadGatewayError": UpstreamTransient,
    "APIResponseValidationError": UpstreamTransient,
    "APIStatusError": UpstreamTransient,
    "APIError": UpstreamTransient,
    "OpenAIError": UpstreamTransient,
    # raised by litellm's own proxy/guardrail layers, which guardproxy does not use
    "BudgetExceededError": UpstreamTransient,
    "GuardrailRaisedException": UpstreamTransient,
    "BlockedPiiEntityError": UpstreamTransient,
    "ModelNotMappedError": UpstreamRejected,
    "ModifyResponseException": UpstreamTransient,
    "SensitiveDataRouteException": UpstreamRejected,
}
_BY_STATUS: Mapping[int, type[UpstreamFailure]] = {
    401: UpstreamAuthFailed,
    403: UpstreamAuthFailed,
    429: UpstreamRateLimited,
}
# Fields litellm would read as its own settings rather than forward; never passed to it.
_NOT_FOR_LITELLM = frozenset({"metadata", "stream", "stream_options", "model", "store"})
# Providers litellm serves through the openai SDK, which accepts our bounded client (`litellm_client`).
_SDK_PROVIDERS = frozenset({"openai", "custom_openai"})


def map_litellm_exception(exc: BaseException, dep: Deployment) -> UpstreamFailure:
    """Translate a litellm exception into our error tree (the boundary; nothing else sees litellm's)."""
    ours = _raised_by_us(exc)
    if ours is not None:  # our bounded client stopped the body; litellm wrapped that
        return ours
    if _connect_failed(exc):
        return UpstreamUnreachable("Could not connect to the provider (connection refused or DNS failure).")
    target: type[UpstreamFailure] = UpstreamTransient
    for cls in type(exc).__mro__:
        if cls.__name__ in EXCEPTION_MAP:
            target = EXCEPTION_MAP[cls.__name__]
            break
    status = getattr(exc, "status_code", None)
    if target is UpstreamTransient and isinstance(status, int):
        # litellm raises a generic APIError for e.g. 403, or a 4xx the provider blames on the request
        target = UpstreamRejected if request_caused(status) else _BY_STATUS.get(status, target)
    text = without_markup(str(getattr(exc, "message", None) or exc))
    message = scrub(text[:500], [dep.api_key or ""])
    message = message.replace("litellm.", "")
    if target is UpstreamRejected:
        context = type(exc).__name__ == "ContextWindowExceededError"
        code = status if isinstance(status, int) and status in (400, 404, 413, 422) else 400
        return UpstreamRejected(
            f"The provider rejected the request: {message}", status=code, context_window=context
        )
    if target is UpstreamRateLimited:
        return UpstreamRateLimited(
            f"The provider rate limited the request: {message}",
            status=429,
            retry_after=retry_after_from(_headers(exc)),
        )
    if target is UpstreamAuthFailed:
        return UpstreamAuthFailed(
            "The provider refused guardproxy's credentials for this deployment.",
            status=status if isinstance(status, int) else None,
        )
    if target is UpstreamTimeout:
        return UpstreamTimeout("The provider did not answer in time.")
    return UpstreamTransient(
        f"The provider call failed: {message}",
        status=status if isinstance(status, int) else None,
        retry_after=retry_after_from(_headers(exc)),
    )


# Connect-phase failures in the cause chain (httpx, aiohttp, the OS): nothing reached the provider.
_CONNECT_ERRORS = frozenset(
    {"ConnectError", "ClientConnectorError", "ClientConnectorDNSError", "ConnectionRefusedError", "gaierror"}
)


def _connect_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if type(seen).__name__ in _CONNECT_ERRORS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _raised_by_us(exc: BaseException) -> UpstreamFailure | None:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, UpstreamFailure):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _headers(exc: BaseException) -> Mapping[str, str]:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    try:
        return {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    except (TypeError, ValueError):
        return {}


class LitellmTransport:
    """Calls `litellm.acompletion` / `aembedding` with litellm's retries off.

    OpenAI-wire deployments get an openai SDK client whose transport reads within `max_bytes` (stream
    lines within `max_line`).
    """

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES, max_line: int = MAX_SSE_LINE) -> None:
        self._lib: ModuleType | None = None
        self.max_bytes = max_bytes
        self.max_line = max_line
        self._clients: dict[tuple[str, str], Any] = {}  # (base, key) -> AsyncOpenAI

    @property
    def loaded(self) -> bool:
        return self._lib is not None

    def litellm(self) -> ModuleType:
        """Import litellm on first use, offline, quiet, with the mock provider registered."""
        if self._lib is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_TELEMETRY", "False")
            import litellm

            from ..mock.litellm_provider import MockLLM

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            litellm.num_retries = 0
            litellm.drop_params = True
            if not any(p.get("provider") == "mock" for p in litellm.custom_provider_map):
                litellm.custom_provider_map = [
                    *litellm.custom_provider_map,
                    {"provider": "mock", "custom_handler": MockLLM()},
                ]
                litellm.utils.custom_llm_setup()
            self._lib = litellm
        return self._lib

    def _kwargs(self, dep: Deployment, body: Mapping[str, Any], call_index: int) -> dict[str, Any]:
        kwargs = {k: v for k, v in body.items() if k not in _NOT_FOR_LITELLM}
        kwargs.update(operator_params(dep))  # the operator's settings win over the client's
        kwargs.update(model=dep.model, num_retries=0, max_retries=0, timeout=dep.timeout)
        if dep.api_base:
            kwargs["api_base"] = dep.api_base
        if dep.api_key:
            kwargs["api_key"] = dep.api_key
        if dep.provider == "mock":
            kwargs["mock_options"] = {**dep.mock, "call_index": call_index}
        client = self._bounded_client(dep)
        if client is not None:
            kwargs["client"] = client
        if dep.input_cost_per_token is not None:
            kwargs["input_cost_per_token"] = dep.input_cost_per_token
        if dep.output_cost_per_token is not None:
            kwargs["output_cost_per_token"] = dep.output_cost_per_token
        return kwargs

    async def complete(self, dep: Deployment, body: Mapping[str, Any], call_index: int) -> dict[str, Any]:
        lib = self.litellm()
        try:
            response = await lib.acompletion(**self._kwargs(dep, body, call_index))
        except Exception as exc:  # the boundary: every litellm error becomes ours
            raise map_litellm_exception(exc, dep) from None
        return _completion_dict(_answered(response))

    async def stream(
        self, dep: Deployment, body: Mapping[str, Any], call_index: int
    ) -> AsyncIterator[dict[str, Any]]:
        lib = self.litellm()
        kwargs = self._kwargs(dep, body, call_index)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        try:
            response = _answered(await lib.acompletion(**kwargs))
            if not _is_event_stream(response):
                raise UpstreamTransient("The provider answered a stream request without an event stream.")
            async for chunk in response:
                yield _chunk_dict(chunk)
        except UpstreamFailure:
            raise
        except Exception as exc:
            raise map_litellm_exception(exc, dep) from None

    async def embed(self, dep: Deployment, body: Mapping[str, Any], call_index: int) -> dict[str, Any]:
        lib = self.litellm()
        kwargs = {name: body[name] for name in ("dimensions", "encoding_format", "user") if name in body}
        kwargs.update(operator_params(dep))
        kwargs.update(model=dep.model, input=body["input"], num_retries=0, timeout=dep.timeout)
        if dep.api_base:
            kwargs["api_base"] = dep.api_base
        if dep.api_key:
            kwargs["api_key"] = dep.api_key
        if dep.provider == "mock":
            # litellm drops OpenAI embedding params (dimensions) for a custom provider: the mock gets
            # the asked size through its options, where it overrides the deployment's `mock.dimensions`.
            asked = {"dimensions": kwargs["dimensions"]} if kwargs.get("dimensions") is not None else {}
            kwargs["mock_options"] = {**dep.mock, **asked, "call_index": call_index}
        try:
            response = await lib.aembedding(**kwargs)
        except Exception as exc:
            raise map_litellm_exception(exc, dep) from None
        out: dict[str, Any] = response.model_dump()
        return out

    def _bounded_client(self, dep: Deployment) -> Any:
        """An openai SDK client over `BoundedTransport` for SDK-served providers; None for the others."""
        base = dep.api_base or DEFAULT_BASES.get(dep.provider)
        if dep.provider not in _SDK_PROVIDERS or not base:
            return None
        key = dep.api_key or os.environ.get("OPENAI_API_KEY") or "unset"
        client = self._clients.get((base, key))
        if client is None:
            import httpx
            import openai

            from .litellm_client import BoundedTransport

            transport = BoundedTransport(self.max_bytes, max_line=self.max_line)
            http = httpx.AsyncClient(transport=transport, timeout=dep.timeout)
            # typed for httpx2 clients only; at run time the SDK takes httpx's too (as litellm's own do)
            client = openai.AsyncOpenAI(base_url=base, api_key=key, http_client=http, max_retries=0)  # type: ignore[arg-type]
            self._clients[(base, key)] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def _answered(response: Any) -> Any:
    """The response, or the provider's refusal it stands for: litellm's OpenAI handler (with
    `drop_params`) re-sends a request the provider answered 422, and returns None once the second
    answer is a 422 too. That is the request's fault: it must not look like a broken provider."""
    if response is None:
        raise UpstreamRejected("The provider rejected the request as unprocessable (422).", status=422)
    return response


def _is_event_stream(response: Any) -> bool:
    """False when the provider labelled its answer as something else (an HTML error page, JSON)."""
    hidden = getattr(response, "_hidden_params", None)
    headers = (hidden.get("additional_headers") if isinstance(hidden, dict) else None) or {}
    content_type = headers.get("llm_provider-content-type")
    return content_type is None or "text/event-stream" in str(content_type)


def _completion_dict(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.model_dump()
    for choice in data.get("choices") or ():
        msg = choice.get("message") or {}
        for key in [k for k, v in msg.items() if v is None and k != "content"]:
            del msg[key]
    if not data.get("choices"):
        raise UpstreamTransient("The provider answered without a valid completion.")
    return {k: v for k, v in data.items() if v is not None or k in ("system_fingerprint",)}


def _chunk_dict(chunk: Any) -> dict[str, Any]:
    data: dict[str, Any] = chunk.model_dump(exclude_none=True)
    return data
