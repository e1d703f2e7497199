"""Mock behaviours: the pure planner, option checking, and the litellm custom provider end to end."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import json_repair
import jsonschema
import pytest

from proxy.mock import MockConfigError, MockReply, embed, plan_reply, validate_options
from proxy.mock.defects import DEFAULT_SCHEMA, DEFECTS, EXTRA_FIELD, break_json

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
        "rating": {"type": "number", "minimum": 0, "maximum": 10},
        "seen": {"type": "boolean"},
        "genres": {"type": "array", "items": {"enum": ["drama", "comedy", "horror"]}, "minItems": 1},
    },
    "required": ["title", "year", "seen"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}


def chat(text: str = "hello there, mock", **extra: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        **extra,
    }


def with_schema(schema: Any = SCHEMA, **extra: Any) -> dict[str, Any]:
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    return chat(response_format=fmt, **extra)


def valid(schema: Any, value: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))


# --- plan_reply: every behaviour -------------------------------------------------------------------


def test_echo_answers_the_last_user_message_with_deterministic_usage() -> None:
    request = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "last "}, {"type": "text", "text": "one"}]},
        ]
    }
    reply = plan_reply("echo", {}, request, 0)
    assert (reply.kind, reply.content, reply.finish_reason) == ("content", "last one", "stop")
    prompt_chars = len("first") + len("x") + len("last one")
    assert reply.usage == {
        "prompt_tokens": math.ceil(prompt_chars / 4),
        "completion_tokens": 2,
        "total_tokens": math.ceil(prompt_chars / 4) + 2,
    }


def test_static_content_and_static_tool_calls() -> None:
    assert plan_reply("static", {"content": "fixed"}, chat(), 0).content == "fixed"
    calls = [{"function": {"name": "f", "arguments": {"a": 1}}}]
    reply = plan_reply("static", {"tool_calls": calls}, chat(), 0)
    assert reply.content is None and reply.finish_reason == "tool_calls"
    assert reply.tool_calls[0]["type"] == "function"
    assert json.loads(reply.tool_calls[0]["function"]["arguments"]) == {"a": 1}
    assert reply.tool_calls[0]["id"].startswith("call_")


def test_schema_answers_valid_json_deterministically_per_seed() -> None:
    first = plan_reply("schema", {"seed": 4}, with_schema(), 0)
    again = plan_reply("schema", {"seed": 4}, with_schema(), 9)
    assert first.content == again.content
    assert valid(SCHEMA, json.loads(first.content or ""))
    others = {plan_reply("schema", {"seed": s}, with_schema(), 0).content for s in range(5)}
    assert len(others) > 1


def test_schema_without_schema_is_plain_text_and_json_object_is_json() -> None:
    text = plan_reply("schema", {}, chat(), 0).content or ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    obj = plan_reply("schema", {}, chat(response_format={"type": "json_object"}), 0).content
    assert valid(DEFAULT_SCHEMA, json.loads(obj or ""))


def test_schema_with_forced_tool_generates_valid_arguments() -> None:
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        reply = plan_reply("schema", {}, chat(tools=[TOOL], tool_choice=choice), 0)
        assert reply.finish_reason == "tool_calls" and reply.content is None
        call = reply.tool_calls[0]["function"]
        assert call["name"] == "get_weather"
        assert valid(TOOL["function"]["parameters"], json.loads(call["arguments"]))
    auto = chat(tools=[TOOL], tool_choice="auto")  # a model given tools uses one (issue 16)
    assert plan_reply("schema", {}, auto, 0).tool_calls[0]["function"]["name"] == "get_weather"
    assert plan_reply("schema", {"auto_tools": False}, auto, 0).tool_calls == ()


def test_schema_that_cannot_be_generated_is_a_400_error() -> None:
    reply = plan_reply("schema", {}, with_schema({"type": "integer", "minimum": 3, "maximum": 1}), 0)
    assert (reply.kind, reply.status) == ("error", 400)
    assert "cannot answer" in reply.message


@pytest.mark.parametrize("defect", DEFECTS)
def test_every_broken_json_defect_breaks_the_schema_answer(defect: str) -> None:
    reply = plan_reply("broken-json", {"defect": defect}, with_schema(), 0)
    text = reply.content or ""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    assert parsed is None or not valid(SCHEMA, parsed), text
    if defect in ("fence", "prose", "trailing_comma", "single_quotes"):
        repaired = json_repair.loads(text)  # syntax defects only: the data itself is intact
        assert valid(SCHEMA, repaired) and repaired == json.loads(
            plan_reply("schema", {}, with_schema(), 0).content
        )
    if defect == "truncated":
        assert reply.finish_reason == "length"
    if defect == "extra_fields":
        assert parsed[EXTRA_FIELD[0]] == EXTRA_FIELD[1]
    if defect == "missing_required":
        assert "title" not in parsed
    if defect == "wrong_types":
        assert isinstance(parsed["year"], str) and parsed["seen"] in ("true", "false")


def test_broken_json_without_schema_breaks_a_default_object_and_tool_arguments() -> None:
    text, _ = break_json({"a": 1}, "trailing_comma")
    assert text == '{"a": 1,}'
    plain = plan_reply("broken-json", {"defect": "fence"}, chat(), 0).content or ""
    assert plain.startswith("```json") and valid(DEFAULT_SCHEMA, json_repair.loads(plain))
    reply = plan_reply(
        "broken-json", {"defect": "single_quotes"}, chat(tools=[TOOL], tool_choice="required"), 0
    )
    arguments = reply.tool_calls[0]["function"]["arguments"]
    assert "'city'" in arguments and valid(TOOL["function"]["parameters"], json_repair.loads(arguments))


def test_error_timeout_and_fault_extras() -> None:
    error = plan_reply("error", {"status": 429, "retry_after": 2}, chat(), 0)
    assert (error.kind, error.status, error.retry_after) == ("error", 429, 2.0)
    assert plan_reply("error", {}, chat(), 0).status == 500
    assert plan_reply("timeout", {}, chat(), 0).kind == "timeout"
    malformed = plan_reply("malformed", {"body": "truncated"}, chat(), 0)
    assert (malformed.kind, malformed.body) == ("malformed", "truncated")
    assert plan_reply("stall", {}, chat(), 0).kind == "stall"
    failing = plan_reply("stream_error", {"message": "boom"}, chat(), 0)
    assert (failing.kind, failing.message) == ("stream_error", "boom")


def test_common_options_apply_to_every_behaviour() -> None:
    options = {"latency_ms": 25, "stream_chunk_chars": 3, "chunk_delay_ms": 5, "stream_cut": True}
    reply = plan_reply("echo", options, chat(), 0)
    assert (reply.latency_ms, reply.stream_chunk_chars, reply.chunk_delay_ms, reply.stream_cut) == (
        25,
        3,
        5,
        True,
    )
    assert (
        plan_reply("static", {"content": "x", "finish_reason": "length"}, chat(), 0).finish_reason == "length"
    )


def test_max_tokens_and_stop_are_honoured() -> None:
    long = "word " * 40
    cut = plan_reply("echo", {}, chat(long, max_tokens=3), 0)
    assert (cut.content, cut.finish_reason) == (long[:12], "length")
    assert plan_reply("echo", {}, chat(long, max_completion_tokens=2), 0).content == long[:8]
    stopped = plan_reply("echo", {}, chat("alpha STOP beta", stop=["STOP"]), 0)
    assert (stopped.content, stopped.finish_reason) == ("alpha ", "stop")


def test_script_steps_follow_the_call_index_and_the_last_repeats() -> None:
    options = {
        "latency_ms": 7,
        "script": [
            {"behaviour": "error", "status": 500},
            {"behaviour": "broken-json", "defect": "fence"},
            {"behaviour": "static", "content": "done", "stream_cut": True},
        ],
    }
    replies = [plan_reply("script", options, chat(), i) for i in range(5)]
    assert [r.kind for r in replies] == ["error", "content", "content", "content", "content"]
    assert replies[0].status == 500
    assert (replies[1].content or "").startswith("```json")
    assert [r.content for r in replies[2:]] == ["done"] * 3
    assert all(r.stream_cut for r in replies[2:]) and all(r.latency_ms == 7 for r in replies)


def test_flaky_is_deterministic_and_close_to_its_fault_rate() -> None:
    options = {"fault_rate": 0.3, "faults": [429, 500, "timeout", "cut", "malformed"], "seed": 1}
    replies = [plan_reply("flaky", options, chat(), i) for i in range(400)]
    assert replies == [plan_reply("flaky", options, chat(), i) for i in range(400)]
    faulty = [r for r in replies if r.kind != "content" or r.stream_cut]
    assert 0.2 < len(faulty) / len(replies) < 0.4
    kinds = {(r.kind, r.status, r.stream_cut) for r in faulty}
    assert {("error", 429, False), ("error", 500, False), ("timeout", 200, False)} <= kinds
    assert ("content", 200, True) in kinds and ("malformed", 200, False) in kinds
    content = plan_reply("flaky", {"fault_rate": 0, "content": "ok"}, chat(), 3)
    assert (content.kind, content.content) == ("content", "ok")


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "options", "where", "text"),
    [
        ("scheme", {}, "", "did you mean 'schema'"),
        ("broken-json", {"defect": "fenced"}, "defect", "did you mean 'fence'"),
        ("error", {"statuss": 500}, "statuss", "did you mean 'status'"),
        ("error", {"status": 418}, "status", "expected one of"),
        ("static", {"content": 3}, "content", "must be a string"),
        ("echo", {"latency_ms": -1}, "latency_ms", "must be >= 0"),
        ("flaky", {"fault_rate": 2}, "fault_rate", "between 0 and 1"),
        ("flaky", {"faults": ["cutt"]}, "faults", "did you mean 'cut'"),
        ("malformed", {"body": "xml"}, "body", "expected one of"),
        ("script", {"script": []}, "script", "non-empty list"),
        ("script", {"script": [{"behaviour": "schema"}, {"status": 500}]}, "script[1]", "mapping with a"),
        ("script", {"script": [{"behaviour": "eror"}]}, "script[0].behaviour", "did you mean 'error'"),
        ("script", {"script": [{"behaviour": "script"}]}, "script[0].behaviour", "cannot be another script"),
        ("script", {"script": [{"behaviour": "error", "status": 7}]}, "script[0].status", "expected one of"),
    ],
)
def test_validate_options_rejects_with_where_and_did_you_mean(
    behaviour: str, options: dict[str, Any], where: str, text: str
) -> None:
    with pytest.raises(MockConfigError) as info:
        validate_options(behaviour, options)
    assert info.value.where == where
    assert text in info.value.message


def test_validate_options_accepts_every_documented_form() -> None:
    validate_options("echo", {"latency_ms": 5, "stream_chunk_chars": 4, "seed": 2, "dimensions": 16})
    validate_options("broken-json", {"defect": "truncated", "stream_cut": True})
    validate_options(
        "script",
        {"script": [{"behaviour": "error", "status": 429, "retry_after": 1}, {"behaviour": "schema"}]},
    )
    validate_options("flaky", {"fault_rate": 0.1, "faults": [429, 500, "timeout", "cut", "malformed"]})
    with pytest.raises(MockConfigError):
        plan_reply("nonsense", {}, chat(), 0)


# --- embeddings ------------------------------------------------------------------------------------


def test_embed_gives_deterministic_unit_vectors() -> None:
    vectors = embed(["a", "b", "a"], dimensions=12, seed=3)
    assert all(len(v) == 12 and abs(sum(x * x for x in v) - 1) < 1e-9 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert embed(["a"], 12, seed=4)[0] != vectors[0]
    assert embed(["a"], 12, seed=3)[0] == vectors[0]


# --- through litellm (the in-process custom provider) ---------------------------------------------


@pytest.fixture
def litellm_mock() -> Iterator[Any]:
    import litellm

    from proxy.mock.litellm_provider import MockLLM

    saved = (list(litellm.custom_provider_map), litellm.suppress_debug_info)
    litellm.suppress_debug_info = True
    litellm.custom_provider_map = [{"provider": "mock", "custom_handler": MockLLM()}]
    litellm.utils.custom_llm_setup()
    yield litellm
    litellm.custom_provider_map, litellm.suppress_debug_info = saved
    litellm.utils.custom_llm_setup()


def call(lib: Any, behaviour: str, options: dict[str, Any], index: int = 0, **kw: Any) -> Any:
    kw.setdefault("messages", chat()["messages"])
    mock_options = {**options, "call_index": index}
    return lib.acompletion(model=f"mock/{behaviour}", mock_options=mock_options, num_retries=0, **kw)


def test_litellm_echo_and_schema(litellm_mock: Any) -> None:
    async def main() -> tuple[Any, Any]:
        return await call(litellm_mock, "echo", {}), await call(litellm_mock, "schema", {}, **with_schema())

    echo, schema = asyncio.run(main())
    assert echo.choices[0].message.content == "hello there, mock"
    assert echo.usage.total_tokens == plan_reply("echo", {}, chat(), 0).usage["total_tokens"]
    assert valid(SCHEMA, json.loads(schema.choices[0].message.content))


def test_litellm_stream_with_usage_and_tool_calls(litellm_mock: Any) -> None:
    async def collect(behaviour: str, **kw: Any) -> list[Any]:
        stream = await call(litellm_mock, behaviour, {"stream_chunk_chars": 4}, stream=True, **kw)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(collect("echo", stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there, mock"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == math.ceil(len(text) / 4)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert chunks[-1].usage.total_tokens == plan_reply("echo", {}, chat(), 0).usage["total_tokens"]
    tools = asyncio.run(collect("schema", tools=[TOOL], tool_choice="required"))
    calls = [tc for c in tools if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function.name == "get_weather"
    assert valid(TOOL["function"]["parameters"], json.loads(calls[0].function.arguments))


def test_litellm_rate_limit_exposes_status_and_retry_after(litellm_mock: Any) -> None:
    async def main(stream: bool) -> Any:
        with pytest.raises(litellm_mock.RateLimitError) as info:
            await call(litellm_mock, "error", {"status": 429, "retry_after": 2}, stream=stream)
        return info.value

    for stream in (False, True):  # on streams too: raised by `await acompletion`, not mid-iteration
        exc = asyncio.run(main(stream))
        assert exc.status_code == 429
        assert exc.response.headers["retry-after"] == "2"
        assert exc.litellm_response_headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "BadRequestError"),
        (401, "AuthenticationError"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailableError"),
    ],
)
def test_litellm_error_statuses_map_to_litellm_classes(litellm_mock: Any, status: int, name: str) -> None:
    with pytest.raises(getattr(litellm_mock, name)) as info:
        asyncio.run(call(litellm_mock, "error", {"status": status}))
    assert info.value.status_code == status


def test_litellm_script_sequence_follows_call_index(litellm_mock: Any) -> None:
    script = {
        "script": [{"behaviour": "error", "status": 503}, {"behaviour": "static", "content": "recovered"}]
    }

    async def main() -> list[Any]:
        out: list[Any] = []
        for index in range(3):
            try:
                out.append((await call(litellm_mock, "script", script, index)).choices[0].message.content)
            except litellm_mock.ServiceUnavailableError as exc:
                out.append(exc.status_code)
        return out

    assert asyncio.run(main()) == [503, "recovered", "recovered"]


def test_litellm_stream_cut_and_in_band_error_raise_mid_stream(litellm_mock: Any) -> None:
    async def main(behaviour: str, options: dict[str, Any]) -> tuple[str, BaseException]:
        stream = await call(litellm_mock, behaviour, {"stream_chunk_chars": 2, **options}, stream=True)
        seen = ""
        try:
            async for chunk in stream:
                seen += chunk.choices[0].delta.content or ""
        except Exception as exc:
            return seen, exc
        raise AssertionError("the stream ended cleanly")

    for behaviour, options in (("echo", {"stream_cut": True}), ("stream_error", {"content": "abcdefgh"})):
        seen, exc = asyncio.run(main(behaviour, options))
        assert seen and len(seen) < 17
        assert type(exc).__name__ == "MidStreamFallbackError"
        assert type(exc.original_exception).__name__ == "APIConnectionError"  # type: ignore[attr-defined]


def test_litellm_latency_timeout_and_embeddings(litellm_mock: Any) -> None:
    async def main() -> Any:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call(litellm_mock, "timeout", {}), 0.2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call(litellm_mock, "echo", {"latency_ms": 5000}), 0.2)
        return await litellm_mock.aembedding(
            model="mock/echo", input=["x", "y"], mock_options={"dimensions": 5}, num_retries=0
        )

    response = asyncio.run(main())
    vectors = [d["embedding"] for d in response.data]
    assert vectors == embed(["x", "y"], 5)


def test_litellm_malformed_and_cut_non_stream_raise(litellm_mock: Any) -> None:
    with pytest.raises(litellm_mock.InternalServerError):
        asyncio.run(call(litellm_mock, "malformed", {"body": "html"}))
    with pytest.raises(litellm_mock.InternalServerError):
        asyncio.run(call(litellm_mock, "echo", {"stream_cut": True}))
    with pytest.raises(litellm_mock.BadRequestError, match="did you mean"):
        asyncio.run(call(litellm_mock, "echo", {"latencyms": 1}))


def test_mock_reply_is_frozen() -> None:
    reply = MockReply("content", content="x")
    with pytest.raises(AttributeError):
        reply.content = "y"  # type: ignore[misc]


def test_static_tool_calls_take_the_short_form_too() -> None:
    """`mock.tool_calls` as the reference documents it: `{name, arguments}`, arguments as raw text."""
    from proxy.mock.behaviours import plan_reply

    short = {"tool_calls": [{"name": "lookup", "arguments": "{'id': 7,}"}]}
    full = {"tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{'id': 7,}"}}]}
    request = {"messages": [{"role": "user", "content": "hi"}]}
    replies = [plan_reply("static", options, request, 0) for options in (short, full)]
    assert replies[0] == replies[1]
    (call,) = replies[0].tool_calls
    assert call["function"] == {"name": "lookup", "arguments": "{'id': 7,}"}
