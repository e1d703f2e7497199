"""`guardproxy mock-server`: the mock behaviours over real HTTP, OpenAI wire format."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from proxy.mock._endpoints import ChatCompletions, Embeddings, MockState
from proxy.mock._responses import Responses
from proxy.mock.options import BEHAVIOURS, MockConfigError, validate_options

__all__ = ["build_server", "create_mock_app", "load_mock_options", "resolve_entries", "run_mock_server"]

_CUT_LOG = "ASGI callable returned without completing response."


def resolve_entries(
    options: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """label -> (behaviour, options); a label's `behaviour:` names its behaviour, else the label does."""
    entries: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for label, raw in options.items():
        if raw is not None and not isinstance(raw, Mapping):
            raise MockConfigError("must be a mapping of mock options", (label,))
        rest = dict(raw or {})
        behaviour = rest.pop("behaviour", label)
        if "behaviour" not in (raw or {}) and behaviour not in BEHAVIOURS:
            hint = "; a label needs `behaviour: <name>`"
            raise MockConfigError(
                f"unknown mock behaviour {label!r}{hint} (one of {', '.join(BEHAVIOURS)})", (label,)
            )
        validate_options(str(behaviour), rest, (label,))
        entries[label] = (behaviour, rest)
    return entries


class MockApp(Starlette):
    """Starlette, with chat completions dispatched before the middleware stack and router."""

    def __init__(self, state: MockState) -> None:
        self._chat = ChatCompletions(state)
        super().__init__(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", Embeddings(state), methods=["POST"]),
                Route("/v1/responses", Responses(state), methods=["POST"]),
                Route("/v1/models", _models, methods=["GET"]),
                Route("/mock/stats", _stats, methods=["GET"]),
                Route("/mock/reset", _reset, methods=["POST"]),
                Route("/mock/last", _last, methods=["GET"]),
            ]
        )
        self.state.mock = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The mock is the benchmarks' floor: its hot route skips routing and middleware (about a third).
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/chat/completions":
            await self._chat(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_mock_app(options: Mapping[str, Mapping[str, Any] | None]) -> Starlette:
    """The mock server app; state (counters, memo) lives on `app.state.mock`, never in module globals."""
    return MockApp(MockState(entries=resolve_entries(options)))


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def _models(request: Request) -> Response:
    state: MockState = request.app.state.mock
    names = list(dict.fromkeys([*state.entries, *BEHAVIOURS]))
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "guardproxy-mock"} for name in names]
    return _json({"object": "list", "data": data})


async def _stats(request: Request) -> Response:
    state: MockState = request.app.state.mock
    return _json({"calls": dict(state.calls), "disconnects": dict(state.disconnects)})


async def _last(request: Request) -> Response:
    """The last body each recorded path received (`/v1/responses`)."""
    state: MockState = request.app.state.mock
    return _json(state.last)


async def _reset(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.calls.clear()
    state.disconnects.clear()
    state.last.clear()
    return _json({"status": "ok"})


def load_mock_options(path: Path | None) -> dict[str, Any]:
    """Read a mock-server YAML file (label -> options); ConfigError with FILE:LINE per problem."""
    if path is None:
        return {}
    from proxy.yamlfile import ConfigError, load_yaml

    located = load_yaml(path)
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([located.problem((), "must map behaviour names or labels to their options")])
    problems = []
    for label, options in data.items():
        try:
            resolve_entries({label: options})
        except MockConfigError as exc:
            problems.append(located.problem(exc.loc, exc.message))
    if problems:
        raise ConfigError(problems)
    return data


class _QuietCuts(logging.Filter):
    """Drop uvicorn's error line for the connections the mock cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _CUT_LOG


def build_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    """A one-worker uvicorn server for `app`, access log off."""
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", lifespan="off")
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietCuts) for f in error_log.filters):
        error_log.addFilter(_QuietCuts())
    return uvicorn.Server(config)


def run_mock_server(host: str, port: int, config: Path | None) -> None:
    """Serve the mock behaviours until interrupted (`guardproxy mock-server`)."""
    build_server(create_mock_app(load_mock_options(config)), host, port).run()
