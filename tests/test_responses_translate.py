"""Property tests of the pure Responses <-> chat translation and the event stream built from chunks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.errors import InvalidRequest
from proxy.responses.events import ChunkTranslator
from proxy.responses.translate import assistant_message, to_chat, to_response
from proxy.wire import completion_to_chunks

text = st.text(max_size=200)
names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
call_ids = st.from_regex(r"call_[a-z0-9]{4,10}", fullmatch=True)
tool_calls = st.lists(
    st.builds(
        lambda cid, name, args: {
            "id": cid,
            "type": "function",
            "function": {"name": name, "arguments": args},
        },
        call_ids,
        names,
        text,
    ),
    max_size=3,
    unique_by=lambda c: c["id"],
)


@st.composite
def completions(draw: st.DrawFn) -> dict[str, Any]:
    calls = draw(tool_calls)
    content = draw(st.one_of(st.none(), text)) if calls else draw(text)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    prompt, completion = draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000))
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": draw(st.sampled_from(["stop", "tool_calls", "length"])),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


ECHO = to_chat({"model": "m", "input": "hi"}).echo


def _without_ids(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "id"} for item in output]


@given(completions())
def test_completion_to_response_and_back(completion: dict[str, Any]) -> None:
    response = to_response(completion, ECHO, response_id="resp_1", model="m")
    message = completion["choices"][0]["message"]
    back = assistant_message(response["output"])
    assert back["content"] == (message["content"] or None)
    assert back.get("tool_calls", []) == message.get("tool_calls", [])
    usage = completion["usage"]
    assert response["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert response["usage"]["total_tokens"] == usage["total_tokens"]
    finish = completion["choices"][0]["finish_reason"]
    assert response["status"] == ("incomplete" if finish == "length" else "completed")


@given(completions(), st.integers(1, 16))
def test_stream_of_chunks_ends_in_the_same_response(completion: dict[str, Any], chunk_chars: int) -> None:
    translator = ChunkTranslator(ECHO, response_id="resp_1", model="m", created_at=1.0)
    events = translator.start()
    for chunk in completion_to_chunks(completion, include_usage=True, chunk_chars=chunk_chars):
        events += translator.feed(chunk)
    events += translator.finish()
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    buffered = to_response(completion, ECHO, response_id="resp_1", model="m")
    assert _without_ids(final["output"]) == _without_ids(buffered["output"])
    assert final["usage"] == buffered["usage"] and final["status"] == buffered["status"]
    # replaying the deltas onto the added items gives the completed items (what the SDKs accumulate)
    added = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.added"}
    text = {i: "" for i in added}
    for e in events:
        if e["type"] in ("response.output_text.delta", "response.function_call_arguments.delta"):
            text[e["output_index"]] += e["delta"]
    for i, item in enumerate(final["output"]):
        assert added[i]["id"] == item["id"]
        expected = item["content"][0]["text"] if item["type"] == "message" else item["arguments"]
        assert text[i] == expected


user_items = st.builds(lambda t: {"role": "user", "content": t}, text)
call_items = st.builds(
    lambda cid, name, args: {"type": "function_call", "call_id": cid, "name": name, "arguments": args},
    call_ids,
    names,
    text,
)
output_items = st.builds(
    lambda cid, out: {"type": "function_call_output", "call_id": cid, "output": out}, call_ids, text
)


@given(st.lists(st.one_of(user_items, call_items, output_items), min_size=1, max_size=8), st.none() | text)
def test_input_items_to_chat_messages(items: list[dict[str, Any]], instructions: str | None) -> None:
    translation = to_chat({"model": "m", "input": items, "instructions": instructions})
    messages = translation.body["messages"]
    if instructions is not None:
        assert messages.pop(0) == {"role": "system", "content": instructions}
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users == [i["content"] for i in items if "role" in i]
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (i["call_id"], i["name"], i["arguments"]) for i in items if i.get("type") == "function_call"
    ]
    outputs = [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"]
    assert outputs == [(i["call_id"], i["output"]) for i in items if i.get("type") == "function_call_output"]


@given(text, st.none() | text)
def test_a_string_input_is_the_user_message_it_stands_for(value: str, instructions: str | None) -> None:
    """The string form (translated directly) and its one-message array form give the same chat body,
    the same input items (listed and stored) and the same messages."""
    short = to_chat({"model": "m", "input": value, "instructions": instructions})
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}
    long = to_chat({"model": "m", "input": [item], "instructions": instructions})
    assert short == long and short.input_items == [item]
    assert short.input_messages == [{"role": "user", "content": value}]


def test_text_format_and_tools_translate() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = to_chat(
        {
            "model": "m",
            "input": "x",
            "max_output_tokens": 50,
            "text": {"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}},
            "tools": [{"type": "function", "name": "f", "parameters": schema}],
            "tool_choice": {"type": "function", "name": "f"},
        }
    ).body
    assert body["max_tokens"] == 50
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "A", "schema": schema, "strict": True},
    }
    assert body["tools"] == [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize("tool", ["web_search", "file_search", "code_interpreter", "computer_use_preview"])
def test_builtin_tools_are_refused_by_name(tool: str) -> None:
    with pytest.raises(InvalidRequest, match=tool) as caught:
        to_chat({"model": "m", "input": "x", "tools": [{"type": tool}]})
    assert caught.value.param == "tools[0].type"
