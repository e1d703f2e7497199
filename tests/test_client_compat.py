"""Regressions found by the compatibility suite (tests/compat, issue 16), kept fast for `make test`."""

from __future__ import annotations

import array
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.embeddings import encoded
from proxy.mock.behaviours import embedding_texts, plan_reply
from proxy.respond import exact_decimal
from proxy.wire import completion_to_chunks

HELLO = [{"role": "user", "content": "hello there, compatibility"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


@pytest.fixture
def proxy_url(make_config: Any, start_proxy: Any) -> str:
    config: Path = make_config(
        {
            "echo": {"deployments": [{"model": "mock/echo", "mock": {"stream_chunk_chars": 4}}]},
            "pii": {"policy": "pii-redact", "deployments": [{"model": "mock/echo"}]},
        },
        cache={"backend": "none"},
    )
    return str(start_proxy(config).url)


@pytest.mark.parametrize("alias", ["echo", "pii"])
def test_streams_end_like_openai_without_include_usage(
    http: httpx.Client, proxy_url: str, alias: str
) -> None:
    body = {"model": alias, "messages": HELLO, "stream": True}
    chunks = _events(http.post(proxy_url + "/v1/chat/completions", json=body))
    assert all(chunk["choices"] for chunk in chunks)  # the quickstart loop indexes choices[0]
    assert all(isinstance(c["created"], int) and c["id"] and c["model"] for c in chunks)
    finish = [c for c in chunks if c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0] is chunks[-1]
    assert "guardproxy" in finish[0] or alias == "echo"


@pytest.mark.parametrize("alias", ["echo", "pii"])
def test_streams_with_include_usage_end_with_one_usage_chunk(
    http: httpx.Client, proxy_url: str, alias: str
) -> None:
    body = {"model": alias, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    chunks = _events(http.post(proxy_url + "/v1/chat/completions", json=body))
    empty = [c for c in chunks if not c["choices"]]
    assert len(empty) == 1 and empty[0] is chunks[-1] and chunks[-1]["usage"]["total_tokens"] > 0


def test_null_optional_fields_mean_absent(http: httpx.Client, proxy_url: str) -> None:
    body = {"model": "echo", "messages": HELLO, "response_format": None, "tools": None, "stop": None}
    answer = http.post(proxy_url + "/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == HELLO[0]["content"]


@pytest.mark.parametrize("inputs", [[15339, 1917], [[15339, 1917], [1917]], "hi", ["a", "b"]])
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_token_ids_and_encodings(
    http: httpx.Client, proxy_url: str, inputs: Any, encoding: str
) -> None:
    body = {"model": "echo", "input": inputs, "encoding_format": encoding}
    answer = http.post(proxy_url + "/v1/embeddings", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    count = 1 if isinstance(inputs, str) or isinstance(inputs[0], int) else len(inputs)
    assert len(data) == count
    for item in data:
        vector = item["embedding"]
        if encoding == "base64":
            vector = list(array.array("f", base64.b64decode(vector)))
        assert len(vector) == 8


def test_n_choices_on_the_litellm_mock(http: httpx.Client, proxy_url: str) -> None:
    answer = http.post(proxy_url + "/v1/chat/completions", json={"model": "echo", "messages": HELLO, "n": 3})
    assert [c["index"] for c in answer.json()["choices"]] == [0, 1, 2]


def test_chunks_carry_the_verdict_on_the_finish_chunk_without_usage() -> None:
    completion = {
        "id": "x",
        "created": None,
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
    }
    chunks = list(completion_to_chunks(completion, include_usage=False, extra_last={"guardproxy": {"a": 1}}))
    assert all(c["choices"] and isinstance(c["created"], int) for c in chunks)
    assert chunks[-1]["guardproxy"] == {"a": 1} and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_encoded_packs_and_unpacks_float32_little_endian() -> None:
    floats = {"data": [{"index": 0, "embedding": [0.5, -0.25]}]}
    packed = encoded(floats, "base64")["data"][0]["embedding"]
    assert packed == base64.b64encode(array.array("f", [0.5, -0.25]).tobytes()).decode()
    assert encoded({"data": [{"embedding": packed}]}, "float")["data"][0]["embedding"] == [0.5, -0.25]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1.5e-05, "0.000015"), (3.0, "3"), (1.23456789012e-9, "0.00000000123456789012")],
)
def test_cost_is_the_shortest_exact_decimal(value: float, text: str) -> None:
    assert exact_decimal(value) == text and float(text) == value


def test_mock_auto_tool_choice_and_token_ids() -> None:
    reply = plan_reply("schema", {}, {"messages": HELLO, "tools": TOOLS}, 0)
    assert reply.finish_reason == "tool_calls" and reply.tool_calls[0]["function"]["name"] == "get_weather"
    off = plan_reply("schema", {"auto_tools": False}, {"messages": HELLO, "tools": TOOLS}, 0)
    assert not off.tool_calls
    after = [*HELLO, {"role": "tool", "tool_call_id": "c", "content": "sunny"}]
    assert not plan_reply("schema", {}, {"messages": after, "tools": TOOLS}, 0).tool_calls
    assert embedding_texts([1, 2]) == ["tokens:1,2"] and embedding_texts([[1], "a"]) == ["tokens:1", "a"]


# --- forced tool calls are guarded by every policy -------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PERSON_TOOLS = [{"type": "function", "function": {"name": "Person", "parameters": PERSON}}]
FORCED = ["required", {"type": "function", "function": {"name": "Person"}}]
FENCED_ARGUMENTS = '```json\n{"name": "Ada", "age": 36}\n```'
FENCED_CALL = [{"type": "function", "function": {"name": "Person", "arguments": FENCED_ARGUMENTS}}]
DEFECTS = ["fence", "trailing_comma", "single_quotes"]


@pytest.fixture
def tools_url(make_config: Any, start_proxy: Any) -> str:
    broken = {defect: {"model": "mock/broken-json", "mock": {"defect": defect}} for defect in DEFECTS}
    static = {"model": "mock/static", "mock": {"tool_calls": FENCED_CALL}}
    config: Path = make_config(
        {
            **{alias: {"deployments": [dep]} for alias, dep in broken.items()},
            "static": {"deployments": [static]},
            "static-pii": {"policy": "pii-redact", "deployments": [static]},
            "echo": {"deployments": [{"model": "mock/echo"}]},
        },
        cache={"backend": "none"},
    )
    return str(start_proxy(config).url)


def _chat(http: httpx.Client, url: str, **body: Any) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": "Ada Lovelace, 36."}], "tools": PERSON_TOOLS, **body}
    return http.post(url + "/v1/chat/completions", json=body)


@pytest.mark.parametrize("choice", FORCED, ids=["required", "named"])
@pytest.mark.parametrize("alias", DEFECTS)
def test_forced_tool_call_arguments_are_repaired_by_the_default_policy(
    http: httpx.Client, tools_url: str, alias: str, choice: Any
) -> None:
    answer = _chat(http, tools_url, model=alias, tool_choice=choice)
    assert answer.status_code == 200, answer.text
    assert (
        answer.headers["x-guardproxy-outcome"] == "repaired"
        and answer.headers["x-guardproxy-attempts"] == "1"
    )
    assert "tool_calls/0:" in answer.headers["x-guardproxy-repairs"]
    [call] = answer.json()["choices"][0]["message"]["tool_calls"]
    arguments = json.loads(call["function"]["arguments"])
    assert isinstance(arguments["name"], str) and isinstance(arguments["age"], int)


def test_auto_tool_calls_are_validated_only_when_the_policy_asks(http: httpx.Client, tools_url: str) -> None:
    for body in ({}, {"tool_choice": "auto"}):
        answer = _chat(http, tools_url, model="static", **body)
        assert answer.status_code == 200 and answer.headers["x-guardproxy-outcome"] == "pass"
        [call] = answer.json()["choices"][0]["message"]["tool_calls"]
        assert call["function"]["arguments"] == FENCED_ARGUMENTS  # untouched
    forced = _chat(http, tools_url, model="static", tool_choice="required")
    [call] = forced.json()["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"name": "Ada", "age": 36}


def _streamed_arguments(response: httpx.Response) -> str:
    return "".join(
        call["function"].get("arguments") or ""
        for chunk in _events(response)
        for call in chunk["choices"][0]["delta"].get("tool_calls") or ()
    )


@pytest.mark.parametrize("alias", ["static", "static-pii"])  # buffered stream, passthrough stream
def test_forced_tool_call_repaired_in_streams(http: httpx.Client, tools_url: str, alias: str) -> None:
    answer = _chat(http, tools_url, model=alias, tool_choice="required", stream=True)
    assert json.loads(_streamed_arguments(answer)) == {"name": "Ada", "age": 36}


def test_forced_tool_call_repaired_on_the_responses_api(http: httpx.Client, tools_url: str) -> None:
    tools = [{"type": "function", "name": "Person", "parameters": PERSON}]
    body = {"model": "static", "input": "Ada Lovelace, 36.", "tools": tools, "tool_choice": "required"}
    answer = http.post(tools_url + "/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    [call] = [item for item in answer.json()["output"] if item["type"] == "function_call"]
    assert json.loads(call["arguments"]) == {"name": "Ada", "age": 36}


def test_forced_tool_call_never_made_is_a_violation(http: httpx.Client, tools_url: str) -> None:
    answer = _chat(
        http, tools_url, model="echo", tool_choice={"type": "function", "function": {"name": "Person"}}
    )
    assert answer.status_code == 422
    [violation] = {v["validator"]: v for v in answer.json()["error"]["violations"]}.values()
    assert violation["validator"] == "tool_calls" and "Person" in violation["message"]


def test_forced_tool_choice_brings_the_tool_calls_validator_in_once() -> None:
    from validators import RequestContext, default_registry, implicit_validators

    registry = default_registry(plugins=False)
    for choice, forced in [
        ("required", True),
        (FORCED[1], True),
        ("auto", False),
        ("none", False),
        (None, False),
    ]:
        ctx = RequestContext(tools=tuple(PERSON_TOOLS), tool_choice=choice)
        assert [v.type for v in implicit_validators(registry, ctx)] == (["tool_calls"] if forced else [])
    no_tools = RequestContext(tool_choice="required")
    assert not no_tools.forces_tool_call()
    listed = [registry.create({"type": "tool_calls", "on_fail": "flag"})]
    assert (
        implicit_validators(
            registry, RequestContext(tools=tuple(PERSON_TOOLS), tool_choice="required"), listed
        )
        == []
    )


# --- routes ----------------------------------------------------------------------------------------


@pytest.fixture
def keyed_url(make_config: Any, start_proxy: Any) -> str:
    echo = {"deployments": [{"model": "mock/echo"}]}
    keys = [{"name": "a", "key": "sk-only-echo", "models": ["echo"]}]
    config: Path = make_config({"echo": echo, "other": echo}, cache={"backend": "none"}, auth={"keys": keys})
    return str(start_proxy(config).url)


def test_retrieve_model_and_unsupported_endpoints(http: httpx.Client, keyed_url: str) -> None:
    auth = {"authorization": "Bearer sk-only-echo"}
    listed = http.get(keyed_url + "/v1/models", headers=auth).json()["data"]
    assert http.get(keyed_url + "/v1/models/echo", headers=auth).json() == listed[0]
    for name in ("other", "nope"):  # another key's alias and an unknown one look the same
        missing = http.get(keyed_url + f"/v1/models/{name}", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert http.get(keyed_url + "/v1/models/echo").status_code == 401
    unknown = http.post(keyed_url + "/v1/assistants", json={}, headers=auth)
    error = unknown.json()["error"]
    assert unknown.status_code == 404 and (error["type"], error["code"]) == (
        "invalid_request_error",
        "unsupported_endpoint",
    )
    assert "POST /v1/chat/completions" in error["message"] and "GET|DELETE /v1/responses/" in error["message"]
    wrong = http.put(keyed_url + "/v1/responses/resp_1", headers=auth)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, DELETE"
    assert "GET, HEAD, DELETE" in wrong.json()["error"]["message"]
    assert http.post(keyed_url + "/v1/models", headers=auth).headers["allow"] == "GET, HEAD"


def test_dimensions_on_the_litellm_mock(http: httpx.Client, proxy_url: str) -> None:
    body = {"model": "echo", "input": [[15339.0, 1917]], "dimensions": 4}
    answer = http.post(proxy_url + "/v1/embeddings", json=body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"][0]["embedding"]) == 4
    for bad in ("4", 0, True, 100_000):
        refused = http.post(proxy_url + "/v1/embeddings", json={**body, "dimensions": bad})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "dimensions"
