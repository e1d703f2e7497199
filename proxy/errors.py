"""The one exception tree of guardproxy; each class is a row of the contract's error table.

    ProxyError                       500 server_error
    ├── InvalidRequest               400 invalid_request_error
    │   ├── InvalidJSON              400 invalid_request_error / invalid_json
    │   ├── RequestTooLarge          413 invalid_request_error / request_too_large
    │   ├── HeadersTooLarge          431 invalid_request_error / headers_too_large
    │   ├── RequestTimeout           408 invalid_request_error / request_timeout (body trickled)
    │   ├── UnsupportedMediaType     415 invalid_request_error / unsupported_media_type
    │   ├── MisdirectedRequest       421 invalid_request_error / misdirected_request (Host not served)
    │   ├── ModelNotFound            404 invalid_request_error / model_not_found
    │   ├── UnsupportedEndpoint      404 invalid_request_error / unsupported_endpoint (no such route)
    │   └── MethodNotAllowed         405 invalid_request_error / method_not_allowed   (allow)
    ├── AuthenticationFailed         401 authentication_error / invalid_api_key
    ├── PermissionDenied             403 permission_error
    ├── OutputValidationFailed       422 guardrail_violation / output_validation_failed
    │   └── ValidationBudgetExceeded 422 guardrail_violation / validation_budget_exceeded (no blame)
    ├── RateLimited                  429 rate_limit_error            (retry-after)
    ├── Overloaded                   503 overloaded                  (retry-after)
    ├── DeadlineExceeded             504 timeout_error
    └── UpstreamFailure              502 upstream_error    raised by the transports, one attempt each
        ├── UpstreamRejected         400/404/422 invalid_request_error (the provider refused the request)
        ├── UpstreamAuthFailed       502 upstream_error    (the provider refused our credentials)
        ├── UpstreamRateLimited      429 rate_limit_error  (transient)
        ├── UpstreamTimeout          504 timeout_error     (transient)
        └── UpstreamTransient        502 upstream_error    (5xx, reset, malformed body, cut stream)
            └── UpstreamUnreachable  502 upstream_error    (connect refused / DNS: fall back at once)

An upstream failure or a passed deadline reaches the client only once guardproxy itself has retried and
fallen back, so those answers carry `x-should-retry: false` (the client's SDK would only add load).

One handler in `proxy.app` turns any of them into the OpenAI error body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AuthenticationFailed",
    "DeadlineExceeded",
    "HeadersTooLarge",
    "InvalidJSON",
    "InvalidRequest",
    "MethodNotAllowed",
    "MisdirectedRequest",
    "ModelNotFound",
    "OutputValidationFailed",
    "Overloaded",
    "PermissionDenied",
    "ProxyError",
    "RateLimited",
    "RequestTimeout",
    "RequestTooLarge",
    "UnsupportedEndpoint",
    "UnsupportedMediaType",
    "UpstreamAuthFailed",
    "UpstreamFailure",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamTransient",
    "UpstreamUnreachable",
    "ValidationBudgetExceeded",
    "internal_error",
]


class ProxyError(Exception):
    """Base of every error guardproxy answers with."""

    status_code = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.context_headers: dict[str, str] = {}  # the x-guardproxy-* headers of the request it ended
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def internal_error() -> ProxyError:
    """The 500 for a bug: says nothing about it (the log has the details)."""
    return ProxyError("guardproxy hit an internal error; the request was not completed.")


class InvalidRequest(ProxyError):
    status_code = 400
    type = "invalid_request_error"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class RequestTooLarge(InvalidRequest):
    status_code = 413
    code = "request_too_large"


class HeadersTooLarge(InvalidRequest):
    status_code = 431
    code = "headers_too_large"


class RequestTimeout(InvalidRequest):
    status_code = 408
    code = "request_timeout"


class UnsupportedMediaType(InvalidRequest):
    status_code = 415
    code = "unsupported_media_type"


class MisdirectedRequest(InvalidRequest):
    status_code = 421
    code = "misdirected_request"


class ModelNotFound(InvalidRequest):
    status_code = 404
    code = "model_not_found"


class UnsupportedEndpoint(InvalidRequest):
    status_code = 404
    code = "unsupported_endpoint"


class MethodNotAllowed(InvalidRequest):
    status_code = 405
    code = "method_not_allowed"


class AuthenticationFailed(ProxyError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("Invalid API key provided.")


class PermissionDenied(ProxyError):
    status_code = 403
    type = "permission_error"
    code = "permission_denied"


_CLIENT_WAIT_LIMIT = 60.0  # seconds; the openai SDK ignores a longer Retry-After


class _RetryAfter(ProxyError):
    """An error that tells the client when to come back."""

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        seconds = max(0.0, self.retry_after)
        return {"retry-after": str(max(1, round(seconds))), "retry-after-ms": str(int(seconds * 1000))}


class RateLimited(_RetryAfter):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def headers(self) -> dict[str, str]:
        out = super().headers()
        if self.retry_after is not None and self.retry_after > _CLIENT_WAIT_LIMIT:
            out["x-should-retry"] = "false"  # SDKs ignore so long a Retry-After and would retry at once
        return out


class Overloaded(_RetryAfter):
    status_code = 503
    type = "overloaded"
    code = "overloaded"


class DeadlineExceeded(ProxyError):
    status_code = 504
    type = "timeout_error"
    code = "deadline_exceeded"

    def headers(self) -> dict[str, str]:
        return {"x-should-retry": "false"}


class OutputValidationFailed(ProxyError):
    status_code = 422
    type = "guardrail_violation"
    code = "output_validation_failed"

    def __init__(self, message: str, violations: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message)
        self.violations = [dict(v) for v in violations]

    def headers(self) -> dict[str, str]:
        return {"x-should-retry": "false"}

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["violations"] = self.violations
        return body


class ValidationBudgetExceeded(OutputValidationFailed):
    """Checking this output took longer than `limits.validation_ms`: the output is unproven, not bad.

    A 422 like any output the policy cannot accept (the request, not the deployment, is the cause:
    nothing is retried, cooled or fallen back for it), with its own code so clients can tell a
    schema too costly to check from an answer that failed it.
    """

    code = "validation_budget_exceeded"

    def __init__(self, limit_ms: float) -> None:
        message = (
            f"Validating the model's output exceeded limits.validation_ms ({limit_ms:g} ms); simplify the"
            " schema (fewer nested anyOf/oneOf branches, no uniqueItems on large arrays)"
            " or ask for less output."
        )
        super().__init__(message, [{"validator": "budget", "message": message, "path": None}])


class UpstreamFailure(ProxyError):
    """One failed upstream attempt; `transient` ones are retried on the same deployment."""

    status_code = 502
    type = "upstream_error"
    code = "upstream_error"
    transient = False
    fallback = True

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.upstream_status = status
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        hint = _RetryAfter("", retry_after=self.retry_after).headers()
        return {**hint, "x-should-retry": "false"}


class UpstreamRejected(UpstreamFailure):
    """The provider refused the request itself: same status to the client, no retry."""

    type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, message: str, *, status: int = 400, context_window: bool = False) -> None:
        super().__init__(message, status=status)
        self.status_code = status if status in (400, 404, 413, 422) else 400
        self.context_window = context_window
        # a larger-context model further down the chain may take it; any other refusal would repeat
        self.fallback = context_window


class UpstreamAuthFailed(UpstreamFailure):
    code = "upstream_auth_failed"


class UpstreamRateLimited(UpstreamFailure):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    transient = True

    def headers(self) -> dict[str, str]:
        hint = self.retry_after if self.retry_after is not None else 1.0
        return {**RateLimited("", retry_after=hint).headers(), "x-should-retry": "false"}


class UpstreamTimeout(UpstreamFailure):
    status_code = 504
    type = "timeout_error"
    code = "upstream_timeout"
    transient = True


class UpstreamTransient(UpstreamFailure):
    transient = True


class UpstreamUnreachable(UpstreamTransient):
    """No connection could be made (refused, DNS): nothing was sent; fall back without retrying here."""

    transient = False
