"""The direct transport: OpenAI-wire providers over one pooled aiohttp session, parsed with orjson."""

from __future__ import annotations

import errno
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

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
from .bounded import ACCEPT_ENCODING, MAX_SSE_LINE, BodyLimit, Lines, too_large

__all__ = [
    "DEFAULT_BASES",
    "DirectTransport",
    "failure_for_status",
    "operator_params",
    "request_caused",
    "retry_after_from",
    "without_markup",
]

# Providers that speak the OpenAI wire format, with their public base URL where one is fixed.
DEFAULT_BASES: Mapping[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "xai": "https://api.x.ai/v1",
    "hosted_vllm": None,
    "lm_studio": None,
    "openai_like": None,
    "custom_openai": None,
}
_ERROR_BODY = 64 * 1024  # of an error answer only the message is used: read no more than this
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE})
_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window", "too many tokens")


# What the transport itself decides (which model, what conversation, streamed or not): not a setting.
_TRANSPORT_FIELDS = frozenset({"model", "messages", "input", "stream", "stream_options"})


def operator_params(dep: Deployment) -> dict[str, Any]:
    """The deployment's `params`, applied over the client's fields: the operator's settings win (a client
    must not raise `max_tokens`, turn on `store` or pick a pricier `service_tier` the operator fixed)."""
    return {k: v for k, v in dep.params.items() if k not in _TRANSPORT_FIELDS}


_MARKUP = re.compile(r"<(?:!doctype|html|head|body)\b.*?(?:</html>|$)", re.IGNORECASE | re.DOTALL)


def without_markup(text: str) -> str:
    """The text with any HTML document in it replaced (an error page must not reach the client)."""
    return _MARKUP.sub("[html page]", text)


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds only; dates are ignored)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


# 4xx answers that are not about the request itself: our credentials, a timeout, a conflict, a rate limit
_NOT_THE_REQUEST = frozenset({401, 403, 408, 409, 429})


def request_caused(status: int) -> bool:
    """Whether the provider blames the request for this status (no retry, no blame on the deployment)."""
    return 400 <= status < 500 and status not in _NOT_THE_REQUEST


def failure_for_status(status: int, message: str, headers: Mapping[str, str]) -> UpstreamFailure:
    """Map an upstream HTTP status to our error tree."""
    if status == 429:
        return UpstreamRateLimited(
            f"The provider rate limited the request: {message}",
            status=429,
            retry_after=retry_after_from(headers),
        )
    if request_caused(status):
        context = any(m in message.lower() for m in _CONTEXT_MARKERS)
        return UpstreamRejected(
            f"The provider rejected the request: {message}", status=status, context_window=context
        )
    if status in (401, 403):
        return UpstreamAuthFailed(
            "The provider refused guardproxy's credentials for this deployment.", status=status
        )
    return UpstreamTransient(
        f"The provider answered HTTP {status}: {message}",
        status=status,
        retry_after=retry_after_from(headers),
    )


class DirectTransport:
    """POSTs the cleaned request to `{api_base}/chat/completions` (or `/responses`, `/embeddings`) without
    litellm.

    Bodies are read within `max_bytes` (decompressed; see `bounded`), stream lines within `max_line`
    bytes.
    """

    def __init__(
        self, *, limit: int = 512, max_bytes: int = DEFAULT_MAX_BYTES, max_line: int = MAX_SSE_LINE
    ) -> None:
        self._limit = limit
        self.max_bytes = max_bytes
        self.max_line = max_line
        self._session: aiohttp.ClientSession | None = None  # pooled: every call
        self._fresh: aiohttp.ClientSession | None = None  # a new connection per request: re-sends only
        self._urls: dict[str, URL] = {}  # parsed once per endpoint: yarl's parse is a visible share of a call

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = _session(
                aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, enable_cleanup_closed=True)
            )
        return self._session

    def _fresh_client(self) -> aiohttp.ClientSession:
        if self._fresh is None or self._fresh.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, force_close=True)
            self._fresh = _session(connector)
        return self._fresh

    async def close(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()

    @staticmethod
    def base_url(dep: Deployment) -> str:
        base = dep.api_base or DEFAULT_BASES.get(dep.provider)
        if not base:
            raise UpstreamAuthFailed("The deployment has no api_base for the direct transport.")
        return base.rstrip("/")

    def _request(
        self, dep: Deployment, path: str, body: Mapping[str, Any]
    ) -> tuple[URL, bytes, dict[str, str]]:
        payload = {**body, **operator_params(dep), "model": dep.wire_model}
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "accept-encoding": ACCEPT_ENCODING,
        }
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        text = self.base_url(dep) + path
        url = self._urls.get(text)
        if url is None:
            url = self._urls[text] = URL(text)
        return url, orjson.dumps(payload), headers

    async def complete(self, dep: Deployment, body: Mapping[str, Any]) -> dict[str, Any]:
        url, data, headers = self._request(dep, "/chat/completions", {**body, "stream": False})
        raw = await self._post(dep, url, data, headers)
        return _completion(raw, dep)

    async def respond(self, dep: Deployment, body: Mapping[str, Any]) -> dict[str, Any]:
        """A Responses API request (an `api: responses` deployment), not streamed: the provider's Response."""
        url, data, headers = self._request(dep, "/responses", {**body, "stream": False})
        parsed = _json(await self._post(dep, url, data, headers), dep)
        if parsed.get("error") or not isinstance(parsed.get("output"), list):
            raise UpstreamTransient("The provider answered 200 without a valid Response.")
        return parsed

    async def embed(self, dep: Deployment, body: Mapping[str, Any]) -> dict[str, Any]:
        url, data, headers = self._request(dep, "/embeddings", body)
        raw = await self._post(dep, url, data, headers)
        parsed = _json(raw, dep)
        if not isinstance(parsed.get("data"), list):
            raise UpstreamTransient("The provider answered an embeddings request with no `data`.")
        return parsed

    async def _send(self, url: URL, data: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """POST, up to the answer's headers. Sent once more when the connection was closed or reset before
        any byte of the answer came back: a pooled connection whose keep-alive timeout on the provider's
        side raced our reuse of it (uvicorn and Node close idle connections after 5 s). Such a request was
        never answered, so it is not an attempt and says nothing about the provider; this is HAProxy's
        `retry-on empty-response`. The re-send opens a connection of its own: the pool hands out its
        oldest idle connection first, and the next one is as likely to be closing. A failure of the
        re-send is the provider's."""
        try:
            return await self._client().post(url, data=data, headers=headers)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if not _closed_unanswered(exc):
                raise
        return await self._fresh_client().post(url, data=data, headers=headers)

    async def _post(self, dep: Deployment, url: URL, data: bytes, headers: dict[str, str]) -> bytearray:
        try:
            async with await self._send(url, data, headers) as resp:
                if resp.status != 200:
                    raw = await _error_body(resp)
                    raise failure_for_status(resp.status, _error_message(raw, dep), resp.headers)
                return await _read(resp, self.max_bytes)
        except aiohttp.ClientConnectorError as exc:  # refused / DNS: nothing was sent
            raise UpstreamUnreachable(f"Could not connect to the provider: {type(exc).__name__}") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamTransient(f"Connection to the provider failed: {type(exc).__name__}") from None

    async def stream(self, dep: Deployment, body: Mapping[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """The answer's chunks, a list per network read: what arrived together crosses the stream's layers
        (idle watch, size count, relay) once, not chunk by chunk."""
        url, data, headers = self._request(dep, "/chat/completions", {**body, "stream": True})
        headers["accept"] = "text/event-stream"
        try:
            async with await self._send(url, data, headers) as resp:
                if resp.status != 200:
                    raw = await _error_body(resp)
                    raise failure_for_status(resp.status, _error_message(raw, dep), resp.headers)
                if "text/event-stream" not in resp.headers.get("content-type", ""):
                    raise UpstreamTransient("The provider answered a stream request without an event stream.")
                chunks = _Chunks(dep)
                async for payloads in _events(resp, self.max_line):
                    batch = chunks.parse(payloads)
                    if batch:
                        yield batch
                    if chunks.failure is not None:
                        raise chunks.failure
                    if chunks.done:
                        break  # one that ends without a finish_reason is cut: `Upstream.stream` tells
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnreachable(f"Could not connect to the provider: {type(exc).__name__}") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamTransient(f"The provider's stream broke: {type(exc).__name__}") from None
        except TimeoutError:
            raise UpstreamTimeout("The provider did not answer in time.") from None


def _session(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        json_serialize=lambda o: orjson.dumps(o).decode(),
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=False,  # inflated by `BodyLimit`, which counts as it inflates
        cookie_jar=aiohttp.DummyCookieJar(),  # a provider's cookies must not follow other callers
    )


def _closed_unanswered(exc: aiohttp.ClientError) -> bool:
    """The provider's end closed (or reset) the connection before the answer's headers; not a refused or
    unresolvable connection (`ClientConnectorError`: nothing was sent, the chain decides)."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    if isinstance(exc, aiohttp.ClientConnectorError):
        return False
    return bool(exc.args) and exc.args[0] in _RESET_ERRNOS


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytearray:
    """The decompressed body, or `too_large` as soon as it passes `limit` (the rest is never read)."""
    encoding = resp.headers.get("content-encoding")
    if not encoding and resp.content_length is not None and resp.content_length > limit:
        raise too_large(limit)
    body = BodyLimit(limit, encoding)
    out = bytearray()  # orjson parses a bytearray: no second copy of the body
    try:
        async for raw in resp.content.iter_any():
            for piece in body.feed(raw):
                out += piece
    except BaseException:
        out.clear()  # the traceback keeps this frame alive through the retries: free the buffer now
        raise
    return out


async def _error_body(resp: aiohttp.ClientResponse) -> bytes:
    """The start of an error answer (enough for its message); never more than _ERROR_BODY bytes."""
    out = bytearray()
    try:
        body = BodyLimit(None, resp.headers.get("content-encoding"))
        async for raw in resp.content.iter_any():
            for piece in body.feed(raw):
                out += piece
                if len(out) >= _ERROR_BODY:
                    return bytes(out[:_ERROR_BODY])
    except UpstreamTransient:
        pass  # an unreadable error body still leaves its status to report
    return bytes(out)


async def _events(resp: aiohttp.ClientResponse, max_line: int) -> AsyncIterator[list[bytes]]:
    """The `data:` payloads of an event stream, decompressed, each line within `max_line` bytes: one list
    per network read (those before a failure in it still come first)."""
    body = BodyLimit(None, resp.headers.get("content-encoding"))
    lines = Lines(max_line)
    async for raw in resp.content.iter_any():
        payloads: list[bytes] = []
        try:
            for piece in body.feed(raw):
                payloads += lines.data(piece)
        except UpstreamTransient:
            if payloads:
                yield payloads
            raise
        if payloads:
            yield payloads
        if lines.failure is not None:
            raise lines.failure
    last = lines.rest()
    if last.startswith(b"data:"):
        yield [last[5:].strip()]


_NOT_JSON = "The provider answered with a body that is not JSON."
_NOT_OBJECT = "The provider answered with JSON that is not an object."


class _Chunks:
    """Parses one stream's payloads: stops at `[DONE]` (`done`) or at a payload that is not a chunk
    (`failure`, raised once the chunks before it are out)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.done = False
        self.failure: UpstreamTransient | None = None

    def parse(self, payloads: list[bytes]) -> list[dict[str, Any]]:
        out = []
        for payload in payloads:
            if payload == b"[DONE]":
                self.done = True
                break
            try:  # `_json` inlined: a stream parses dozens of these per answer
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self.failure = UpstreamTransient(_NOT_JSON)
                break
            if chunk.__class__ is not dict:
                self.failure = UpstreamTransient(_NOT_OBJECT)
                break
            if "error" in chunk:
                message = _error_message(payload, self.dep)
                self.failure = UpstreamTransient("The provider sent an error event mid-stream: " + message)
                break
            out.append(chunk)
        return out


def _json(raw: bytes | bytearray, dep: Deployment) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamTransient(_NOT_JSON) from None
    if not isinstance(parsed, dict):
        raise UpstreamTransient(_NOT_OBJECT)
    return parsed


def _completion(raw: bytes | bytearray, dep: Deployment) -> dict[str, Any]:
    parsed = _json(raw, dep)
    choices = parsed.get("choices")
    if "error" in parsed or not isinstance(choices, list) or not choices:
        raise UpstreamTransient("The provider answered 200 without a valid completion.")
    return parsed


def _error_message(raw: bytes, dep: Deployment) -> str:
    try:
        parsed = orjson.loads(raw)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        message = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else None)
    except orjson.JSONDecodeError:
        message = None
    text = str(message) if message else raw[:200].decode("utf-8", "replace")
    return scrub(without_markup(text)[:500], [dep.api_key or ""])
