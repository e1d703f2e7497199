"""The litellm custom provider `mock`: the mock behaviours in-process (the only mock module using litellm).

Errors are raised as litellm's own exception classes, with the status on `status_code` and the headers
(`retry-after` when the behaviour gives one) on both `exc.response.headers` (an httpx.Response) and
`exc.litellm_response_headers` (httpx.Headers). On streams an error reply is raised synchronously by
`astreaming`, so it surfaces from `await litellm.acompletion(..., stream=True)` like an HTTP error status
would; a cut or an in-band error after the first chunk surfaces from the iterator as litellm's
`MidStreamFallbackError` whose `original_exception` is the APIConnectionError / APIError raised here.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

# litellm fetches its price map from the network at import unless told otherwise.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import litellm  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import EmbeddingResponse, GenericStreamingChunk, ModelResponse  # noqa: E402

from proxy.mock.behaviours import MockReply, embed, embedding_texts, plan_reply  # noqa: E402
from proxy.mock.options import MockConfigError, validate_options  # noqa: E402

__all__ = ["MockLLM", "mock_exception"]

_PROVIDER = "mock"
_URL = "http://mock.invalid/v1/chat/completions"
_NOT_REQUEST = frozenset({"mock_options", "max_retries"})


class MockLLM(CustomLLM):  # type: ignore[misc]
    """Answers `litellm.acompletion(model="mock/<behaviour>", mock_options={..., "call_index": n})`."""

    async def acompletion(
        self, model: str, messages: list[Any], optional_params: dict[str, Any], **_: Any
    ) -> ModelResponse:
        """One non-streamed answer."""
        reply = _plan(model, messages, optional_params)
        await _wait_first_byte(reply)
        if reply.kind == "error":
            raise mock_exception(reply, model)
        # The classes below are what litellm's own openai/ path raises for the same faults over HTTP.
        if reply.kind == "malformed":
            raise _internal(f"mock: empty or invalid response body ({reply.body})", model)
        if reply.kind == "stream_error":
            raise litellm.APIError(
                status_code=500, message=reply.message, llm_provider=_PROVIDER, model=model
            )
        if reply.kind == "stall":
            await _forever()
        if reply.stream_cut:
            raise _internal("mock: connection error (closed mid-response)", model)
        n = optional_params.get("n")
        return _model_response(reply, model, n if isinstance(n, int) and 0 < n <= 128 else 1)

    def astreaming(
        self, model: str, messages: list[Any], optional_params: dict[str, Any], **_: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        """A stream of chunks; error replies raise here, before the stream exists (like an HTTP status)."""
        reply = _plan(model, messages, optional_params)
        if reply.kind == "error":
            raise mock_exception(reply, model)
        return _stream(reply, model)

    async def aembedding(
        self,
        model: str,
        input: list[Any],
        model_response: EmbeddingResponse,
        optional_params: dict[str, Any],
        **_: Any,
    ) -> EmbeddingResponse:
        """Deterministic unit vectors of `mock.dimensions` (default 8); error behaviours still fail."""
        options = dict(optional_params.get("mock_options") or {})
        reply = _plan(model, [], optional_params)
        await _wait_first_byte(reply)
        if reply.kind == "error":
            raise mock_exception(reply, model)
        texts = embedding_texts(input)
        dimensions = int(optional_params.get("dimensions") or options.get("dimensions") or 8)
        vectors = embed(texts, dimensions, int(options.get("seed", 0)))
        model_response.data = [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ]
        model_response.model = model
        tokens = max(1, sum(len(t) for t in texts) // 4)
        model_response.usage = litellm.Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
        return model_response


def _plan(model: str, messages: list[Any], optional_params: Mapping[str, Any]) -> MockReply:
    options = dict(optional_params.get("mock_options") or {})
    call_index = int(options.pop("call_index", 0))
    behaviour = model.removeprefix("mock/")
    try:
        validate_options(behaviour, options)
    except MockConfigError as exc:
        raise litellm.BadRequestError(
            message=f"invalid mock configuration: {exc}", model=model, llm_provider=_PROVIDER
        ) from None
    request = {k: v for k, v in optional_params.items() if k not in _NOT_REQUEST}
    request["messages"] = messages
    return plan_reply(behaviour, options, request, call_index)


def mock_exception(reply: MockReply, model: str) -> Exception:
    """The litellm exception for an error reply, carrying status and `retry-after`."""
    headers = {"content-type": "application/json"}
    if reply.retry_after is not None:
        headers["retry-after"] = f"{reply.retry_after:g}"
    response = httpx.Response(reply.status, headers=headers, request=httpx.Request("POST", _URL))
    common: dict[str, Any] = {"message": reply.message, "llm_provider": _PROVIDER, "model": model}
    status = reply.status
    exc: Exception
    if status in _BY_STATUS:
        exc = _BY_STATUS[status](**common, response=response)
    elif status in (408, 504):
        exc = litellm.Timeout(**common, headers=headers, exception_status_code=status, response=response)
    else:
        exc = litellm.APIError(status_code=status, **common, response=response)
    exc.litellm_response_headers = response.headers  # type: ignore[attr-defined]
    return exc


_BY_STATUS: Mapping[int, Any] = {
    400: litellm.BadRequestError,
    401: litellm.AuthenticationError,
    403: litellm.PermissionDeniedError,
    404: litellm.NotFoundError,
    422: litellm.UnprocessableEntityError,
    429: litellm.RateLimitError,
    500: litellm.InternalServerError,
    502: litellm.BadGatewayError,
    503: litellm.ServiceUnavailableError,
}


def _internal(message: str, model: str) -> Exception:
    exc: Exception = litellm.InternalServerError(message=message, llm_provider=_PROVIDER, model=model)
    return exc


async def _wait_first_byte(reply: MockReply) -> None:
    if reply.latency_ms > 0:
        await asyncio.sleep(reply.latency_ms / 1000)
    if reply.kind == "timeout":
        await _forever()


async def _forever() -> None:
    """Never return; the caller's timeout or cancellation ends the wait."""
    await asyncio.Event().wait()


def _model_response(reply: MockReply, model: str, n: int = 1) -> ModelResponse:
    """The answer, `n` times (the request's `n`: every choice the same)."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [dict(call) for call in reply.tool_calls]
    usage = dict(reply.usage)
    usage["completion_tokens"] = usage.get("completion_tokens", 0) * n
    usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage["completion_tokens"]
    return ModelResponse(
        id=f"chatcmpl-mock-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=model,
        choices=[
            {"index": i, "finish_reason": reply.finish_reason, "message": dict(message)} for i in range(n)
        ],
        usage=usage,
    )


async def _stream(reply: MockReply, model: str) -> AsyncIterator[GenericStreamingChunk]:
    await _wait_first_byte(reply)
    if reply.kind == "malformed":
        raise _internal(f"mock: invalid stream body ({reply.body})", model)
    text, size = reply.content or "", reply.stream_chunk_chars
    chunks = [_chunk(text[i : i + size]) for i in range(0, len(text), size)]
    chunks += [_chunk("", tool_use={**call, "index": i}) for i, call in enumerate(reply.tool_calls)]
    failing = reply.stream_cut or reply.kind in ("stall", "stream_error")
    for index, chunk in enumerate(chunks[: max(1, len(chunks) // 2)] if failing else chunks):
        if index and reply.chunk_delay_ms:
            await asyncio.sleep(reply.chunk_delay_ms / 1000)
        yield chunk
    if reply.kind == "stall":
        await _forever()
    if reply.kind == "stream_error" or reply.stream_cut:
        message = reply.message if reply.kind == "stream_error" else "mock: connection closed mid-stream"
        raise litellm.APIConnectionError(message=message, llm_provider=_PROVIDER, model=model)
    yield _chunk("", finished=reply.finish_reason, usage=dict(reply.usage))


def _chunk(
    text: str, *, tool_use: Any = None, finished: str | None = None, usage: dict[str, Any] | None = None
) -> GenericStreamingChunk:
    return {
        "text": text,
        "tool_use": tool_use,
        "is_finished": finished is not None,
        "finish_reason": finished or "",
        "usage": usage,
        "index": 0,
    }
