"""`POST /v1/responses` on the mock server, through openai-python's `client.responses`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.test_mock_server import OPTIONS, MockServer

QUESTION = "what is the weather like in Lisbon today?"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Forecast(BaseModel):
    city: str
    temps: list[float]


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with MockServer({**OPTIONS, "weather": {"behaviour": "schema", "seed": 3}}) as mock:
        yield openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-mock", max_retries=0, timeout=10)


def test_create_text_and_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(model="echo", input=QUESTION, instructions="Be brief.")
    assert response.output_text == QUESTION and response.status == "completed"
    assert response.instructions == "Be brief." and response.usage and response.usage.total_tokens > 0


def test_stream_events_in_order(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="echo", input=QUESTION, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == QUESTION


def test_parse_structured_output(client: openai.OpenAI) -> None:
    response = client.responses.parse(model="weather", input=QUESTION, text_format=Forecast)
    assert isinstance(response.output_parsed, Forecast)


def test_function_call_then_text_and_builtin_tools_ignored(client: openai.OpenAI) -> None:
    tools: list = [WEATHER, {"type": "web_search"}]
    first = client.responses.create(model="weather", input=QUESTION, tools=tools)
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather" and "city" in call.arguments
    second = client.responses.create(
        model="weather",
        input=[
            {"role": "user", "content": QUESTION},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=tools,
    )
    assert second.output[0].type == "message" and second.output_text


def test_stream_function_call_arguments(client: openai.OpenAI) -> None:
    with client.responses.stream(model="weather", input=QUESTION, tools=[WEATHER]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and final.output[0].type == "function_call"


def test_errors_and_faults(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="limited", input=QUESTION)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-behaviour", input=QUESTION)
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.create(model="echo", input=QUESTION, background=True)
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="cut", input=QUESTION, stream=True))
    events = list(client.responses.create(model="inband", input=QUESTION, stream=True))
    error, failed = events[-2:]  # in-band, as the Responses API (and guardproxy's route) ends a failed stream
    assert error.type == "error" and error.message == "upstream exploded" and error.code == "server_error"
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error and failed.response.error.message == "upstream exploded"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    sent = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert sent and "partial answer here".startswith(sent) and sent != "partial answer here"
    (added,) = [e for e in events if e.type == "response.output_item.added"]
    assert [item.id for item in failed.response.output] == [added.item.id]  # the item it had started
    assert not any(e.type == "response.completed" for e in events)


def test_a_failed_stream_ends_with_the_responses_error_events_not_a_chat_error(client: openai.OpenAI) -> None:
    raw = httpx.post(
        str(client.base_url) + "responses",
        json={"model": "inband", "input": QUESTION, "stream": True},
        headers={"authorization": "Bearer sk-mock"},
        timeout=10,
    )
    blocks = [b for b in raw.text.split("\n\n") if b.strip()]
    assert blocks[-2].startswith("event: error\ndata: ") and blocks[-1].startswith("event: response.failed\n")
    assert all(b.startswith("event: ") for b in blocks)  # no chat-style `data: {"error": ...}` block
    assert json.loads(blocks[-2].split("data: ", 1)[1])["message"] == "upstream exploded"
    assert "[DONE]" not in raw.text
