"""`api: responses` deployments: a /v1/responses request reaches the provider's own /v1/responses (the
HTTP mock on loopback), built-in tools pass through, and the answer climbs the same ladder."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

SCRIPT = [{"behaviour": "static", "content": "a secret"}, {"behaviour": "static", "content": "all fine"}]
MOCK = {
    "echo": None,
    "fenced": {"behaviour": "broken-json", "defect": "fence"},
    "leaky": {"behaviour": "script", "script": SCRIPT},
}
KEYS = {"keys": [{"name": "team-a", "key": "sk-team-a", "models": ["*"]}]}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def proxy(make_config: Any, start_proxy: Any, upstream: Any) -> Any:
    def dep(label: str, **extra: Any) -> dict[str, Any]:
        return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-up", **extra}

    models = {
        "native": {"deployments": [dep("echo", api="responses", params={"temperature": 0.5})]},
        "native-fence": {"deployments": [dep("fenced", api="responses")]},
        "chat-only": {"deployments": [dep("echo")]},
        "native-reask": {"policy": "no-secrets", "deployments": [dep("leaky", api="responses")]},
    }
    policies = {"no-secrets": {"validators": [{"type": "phrases", "deny": ["secret"]}], "on_fail": ["reask"]}}
    return start_proxy(make_config(models, policies=policies, auth=KEYS))


@pytest.fixture
def client(proxy: Any, client_for: Any) -> openai.OpenAI:
    c: openai.OpenAI = client_for(proxy, "sk-team-a")
    return c


def _last(upstream: Any) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(upstream.url + "/mock/last").json()["/v1/responses"]
    return body


def test_builtin_tool_passes_through(client: openai.OpenAI, upstream: Any) -> None:
    tools: Any = [{"type": "web_search"}]
    response = client.responses.create(model="native", input="news today?", tools=tools)
    assert response.status == "completed" and response.output_text == "news today?"
    sent = _last(upstream)
    assert sent["tools"] == [{"type": "web_search"}] and sent["model"] == "echo"
    assert sent["temperature"] == 0.5 and sent["stream"] is False  # operator params; buffer mode


def test_builtin_tool_refused_without_native_deployment(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="chat-only", input="news today?", tools=[{"type": "web_search"}])
    assert "web_search" in str(err.value)


def test_chat_completions_still_use_chat(client: openai.OpenAI, upstream: Any) -> None:
    httpx.post(upstream.url + "/mock/reset")
    chat = client.chat.completions.create(model="native", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content == "hi"
    assert httpx.get(upstream.url + "/mock/last").json() == {}  # nothing reached /v1/responses


def test_fenced_json_is_repaired(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.parse(
        model="native-fence",
        input="a person",
        text_format=Person,
        extra_headers={"cache-control": "no-store"},
    )
    assert raw.headers["x-guardproxy-outcome"] == "repaired"
    response = raw.parse()
    assert isinstance(response.output_parsed, Person)
    assert json.loads(response.output_text) == response.output_parsed.model_dump()


def test_reask_appends_the_correction_to_input(client: openai.OpenAI, upstream: Any) -> None:
    raw = client.responses.with_raw_response.create(model="native-reask", input="tell me")
    assert raw.headers["x-guardproxy-outcome"] == "reasked" and raw.parse().output_text == "all fine"
    sent = _last(upstream)["input"]
    assert [i["role"] for i in sent] == ["user", "assistant", "user"] and sent[1]["content"] == "a secret"


def test_stream_is_buffered(client: openai.OpenAI, upstream: Any) -> None:
    events = list(client.responses.create(model="native", input="stream me", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "stream me"
    assert _last(upstream)["stream"] is False


def test_provider_response_as_completion_keeps_builtin_items() -> None:
    from proxy.responses.events import ChunkTranslator
    from proxy.responses.native import NativeRequest

    search = {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search"}}
    provider = {
        "id": "resp_up",
        "status": "completed",
        "output": [
            search,
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    }
    native = NativeRequest.of({"model": "m", "input": "x"}, [], [], 1)
    completion = native.completion(provider)
    choice = completion["choices"][0]
    assert choice["message"]["content"] == "Hi" and choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert completion["usage"]["total_tokens"] == 5 and native.items == [search]
    translator = ChunkTranslator({}, response_id="resp_x", model="m", created_at=0)
    events = translator.given(native.items) + translator.feed(
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}
    )
    events += translator.finish()
    assert events[0]["item"] == search and translator.final is not None
    assert [i["type"] for i in translator.final["output"]] == ["web_search_call", "message"]


def test_instructions_do_not_carry_over_to_the_next_turn(client: openai.OpenAI, upstream: Any) -> None:
    """The stored conversation is the turn's input and answer, without its `instructions` (as OpenAI)."""
    first = client.responses.create(model="native", input="first turn", instructions="Be brief.")
    client.responses.create(
        model="native", input="second turn", instructions="Be kind.", previous_response_id=first.id
    )
    sent = _last(upstream)
    assert sent["instructions"] == "Be kind." and "Be brief." not in json.dumps(sent["input"])
    assert [i.get("role") for i in sent["input"]] == ["user", "assistant", "user"]
