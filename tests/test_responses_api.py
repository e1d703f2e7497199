"""`/v1/responses` through the official openai SDK against a real guardproxy on loopback (mock provider)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

KEYS = {
    "keys": [
        {"name": "team-a", "key": "sk-team-a", "models": ["*"]},
        {"name": "team-b", "key": "sk-team-b", "models": ["*"]},
    ]
}
SERVER = {"metrics_auth": "none"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def _call(arguments: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}


TOOL_THEN_TEXT = [
    {"behaviour": "static", "tool_calls": [_call('{"city": "Paris"}')]},
    {"behaviour": "static", "content": "It is sunny in Paris."},
]
MODELS = {
    "echo": {"deployments": [{"model": "mock/echo"}]},
    "fence": {"deployments": [{"model": "mock/broken-json", "mock": {"defect": "fence"}}]},
    "tools": {"deployments": [{"model": "mock/script", "mock": {"script": TOOL_THEN_TEXT}}]},
    "banned": {
        "policy": "no-secrets",
        "deployments": [{"model": "mock/static", "mock": {"content": "a secret"}}],
    },
    "relay": {"policy": "relay", "deployments": [{"model": "mock/echo", "mock": {"stream_chunk_chars": 3}}]},
}
POLICIES = {
    "no-secrets": {"validators": [{"type": "phrases", "deny": ["secret"]}], "on_fail": ["reject"]},
    "relay": {"validators": [{"type": "phrases", "deny": ["forbidden"]}], "stream": "passthrough"},
}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def proxy(make_config: Any, start_proxy: Any) -> Any:
    return start_proxy(make_config(MODELS, policies=POLICIES, auth=KEYS, server=SERVER))


@pytest.fixture
def client(proxy: Any, client_for: Any) -> openai.OpenAI:
    c: openai.OpenAI = client_for(proxy, "sk-team-a")
    return c


def test_create_text(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="echo", input="Hello there", instructions="Be brief."
    )
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == "echo"
    assert response.output_text == "Hello there"
    assert response.output[0].type == "message" and response.output[0].content[0].type == "output_text"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.instructions == "Be brief."
    assert raw.headers["x-guardproxy-outcome"] == "pass"
    assert raw.headers["x-guardproxy-policy"] == "default"


def test_function_tools_two_turns(client: openai.OpenAI) -> None:
    first = client.responses.create(model="tools", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    second = client.responses.create(
        model="tools",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "It is sunny in Paris."
    assert second.previous_response_id == first.id


def test_parse_repairs_broken_json(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.parse(model="fence", input="Who?", text_format=Person)
    parsed = raw.parse()
    assert isinstance(parsed.output_parsed, Person)
    assert raw.headers["x-guardproxy-outcome"] == "repaired"
    assert "fence" in raw.headers["x-guardproxy-repairs"]


@pytest.mark.parametrize("model", ["echo", "relay"])  # buffer and passthrough policies
def test_stream_helper(client: openai.OpenAI, model: str) -> None:
    with client.responses.stream(model=model, input="Stream me, please") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "Stream me, please"
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert final.usage is not None and final.usage.output_tokens > 0


def test_create_stream_true_sequence_numbers(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="tools", input="Weather?", tools=[WEATHER], stream=True))  # type: ignore[list-item]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output[0].type == "function_call"


def test_rejection_is_422_with_violations(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.responses.create(model="banned", input="Tell me")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "output_validation_failed"
    assert error["violations"][0]["validator"] == "phrases"
    assert caught.value.response.headers["x-guardproxy-outcome"] == "rejected"


def test_store_get_input_items_delete(client: openai.OpenAI, proxy: Any, client_for: Any) -> None:
    created = client.responses.create(model="echo", input=[{"role": "user", "content": "keep me"}])
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "keep me"
    items = client.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    other = client_for(proxy, "sk-team-b")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        other.responses.create(model="echo", input="go on", previous_response_id=created.id)
    assert caught.value.code == "previous_response_not_found"
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    created = client.responses.create(model="echo", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="echo", input="again", previous_response_id=created.id)


def test_builtin_tool_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="echo", input="news?", tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.message
    assert caught.value.param == "tools[0].type"


def test_access_log_and_metrics(
    client: openai.OpenAI, proxy: Any, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="guardproxy.access"):
        client.responses.create(model="echo", input="count me")
    lines = [r.fields for r in caplog.records if getattr(r, "fields", None)]
    line = next(f for f in lines if f["path"] == "/v1/responses")
    assert line["alias"] == "echo" and line["outcome"] == "pass" and line["status"] == 200
    assert line["key"] == "team-a" and line["tokens"] > 0
    metrics = http.get(proxy.url + "/metrics", headers={"authorization": "Bearer sk-team-a"})
    labels = 'alias="echo",outcome="pass",route="responses",status="200"'
    assert f"guardproxy_requests_total{{{labels}}}" in metrics.text


def test_openapi(proxy: Any, http: httpx.Client) -> None:
    spec = http.get(proxy.url + "/openapi.json").json()
    assert "post" in spec["paths"]["/v1/responses"]
    assert {"get", "delete"} <= set(spec["paths"]["/v1/responses/{response_id}"])
    assert "get" in spec["paths"]["/v1/responses/{response_id}/input_items"]


def test_create_goes_straight_to_its_endpoint(client: openai.OpenAI, proxy: Any, http: httpx.Client) -> None:
    """POST /v1/responses skips Starlette (router, Request, exception middleware) as chat does; its other
    methods and the routes under it still go through Starlette."""
    starlette = proxy.server.config.app.starlette
    stack, seen = starlette.middleware_stack, []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["method"], scope["path"]))
        await stack(scope, receive, send)

    starlette.middleware_stack = spy
    created = client.responses.create(model="echo", input="no router")
    assert client.responses.retrieve(created.id).output_text == "no router"
    refused = http.get(proxy.url + "/v1/responses", headers={"authorization": "Bearer sk-team-a"})
    assert refused.status_code == 405
    assert seen == [("GET", f"/v1/responses/{created.id}"), ("GET", "/v1/responses")]


def test_a_cached_answer_is_a_response_of_its_own(client: openai.OpenAI) -> None:
    """A cache hit renders its completion as a Response like a fresh answer: a new id, the guardproxy
    headers of a hit, the body's own length, and stored for the next turn."""
    first = client.responses.with_raw_response.create(model="echo", input="say it twice")
    second = client.responses.with_raw_response.create(model="echo", input="say it twice")
    assert first.headers["x-guardproxy-cache"] == "miss" and second.headers["x-guardproxy-cache"] == "hit"
    assert second.headers["x-guardproxy-attempts"] == "0" and second.headers["x-guardproxy-outcome"] == "pass"
    assert second.headers["x-guardproxy-cache-key"] == first.headers["x-guardproxy-cache-key"]
    assert second.headers["content-type"] == "application/json"
    assert int(second.headers["content-length"]) == len(second.content)
    one, two = first.parse(), second.parse()
    assert two.output_text == one.output_text == "say it twice" and two.id != one.id
    assert client.responses.retrieve(two.id).model_dump() == two.model_dump()
