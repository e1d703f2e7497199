"""openai-python as its README writes it: sync, async, parse, stream, tools, embeddings, errors."""

from __future__ import annotations

import array
import asyncio
import base64
import json
import math
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.compat.conftest import Proxy

pytestmark = pytest.mark.compat
HELLO = [{"role": "user", "content": "Say hello to the compatibility suite."}]


class Person(BaseModel):
    name: str
    age: int


class Weather(BaseModel):
    city: str
    unit: str


WEATHER_TOOL = openai.pydantic_function_tool(Weather, name="get_weather")


def client(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="sk-compat", max_retries=0, timeout=30)


def test_sync_create(proxy: Proxy, model: Any) -> None:
    completion = client(proxy).chat.completions.create(model=model("echo"), messages=HELLO)
    assert completion.choices[0].message.content == HELLO[0]["content"]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_async_create_and_n(proxy: Proxy, model: Any) -> None:
    async def main() -> Any:
        async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="sk-compat", max_retries=0) as aclient:
            return await aclient.chat.completions.create(model=model("echo"), messages=HELLO, n=2)

    completion = asyncio.run(main())
    assert [c.index for c in completion.choices] == [0, 1]
    assert {c.message.content for c in completion.choices} == {HELLO[0]["content"]}


def test_null_optional_fields(proxy: Proxy, model: Any) -> None:
    completion = client(proxy).chat.completions.create(
        model=model("echo"), messages=HELLO, extra_body={"response_format": None, "tools": None, "stop": None}
    )
    assert completion.choices[0].message.content == HELLO[0]["content"]


@pytest.mark.parametrize("stem", ["schema", "fence", "trailing"])
def test_parse(proxy: Proxy, model: Any, stem: str) -> None:
    api = client(proxy)
    parse = api.chat.completions.parse if hasattr(api.chat.completions, "parse") else None
    beta = getattr(getattr(api, "beta", None), "chat", None)
    for method in [m for m in (parse, beta and beta.completions.parse) if m]:
        completion = method(model=model(stem), messages=HELLO, response_format=Person)
        person = completion.choices[0].message.parsed
        assert isinstance(person, Person)


def test_stream_helper(proxy: Proxy, model: Any) -> None:
    with client(proxy).chat.completions.stream(
        model=model("fence"), messages=HELLO, response_format=Person
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "content.done" in kinds
    assert isinstance(final.choices[0].message.parsed, Person)


@pytest.mark.parametrize("stem", ["echo", "pii", "schema"])
def test_quickstart_stream_loop(proxy: Proxy, model: Any, stem: str) -> None:
    """The quickstart loop: `chunk.choices[0].delta.content` on every chunk, no IndexError."""
    stream = client(proxy).chat.completions.create(model=model(stem), messages=HELLO, stream=True)
    text = ""
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        assert chunk.id and chunk.object == "chat.completion.chunk" and isinstance(chunk.created, int)
    assert text if stem == "schema" else text == HELLO[0]["content"]


@pytest.mark.parametrize("stem", ["echo", "pii", "schema"])
def test_stream_include_usage(proxy: Proxy, model: Any, stem: str) -> None:
    stream = client(proxy).chat.completions.create(
        model=model(stem), messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    empty = [c for c in chunks if not c.choices]
    assert len(empty) == 1 and empty[0] is chunks[-1]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason] == ["stop"]


def test_forced_tool_call_parse(proxy: Proxy, model: Any) -> None:
    completion = client(proxy).chat.completions.parse(
        model=model("schema"),
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(call.function.parsed_arguments, Weather)


def test_auto_tool_call(proxy: Proxy, model: Any) -> None:
    completion = client(proxy).chat.completions.create(
        model=model("schema"),
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    Weather.model_validate_json(choice.message.tool_calls[0].function.arguments)


@pytest.mark.parametrize("stem", ["fence", "trailing"])
def test_forced_tool_call_repaired(proxy: Proxy, model: Any, stem: str) -> None:
    completion = client(proxy).chat.completions.create(
        model=model(stem),
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    Weather.model_validate_json(completion.choices[0].message.tool_calls[0].function.arguments)


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        (["hello", "world"], {}),
        (["hello", "world"], {"encoding_format": "float"}),
        ("hello", {"encoding_format": "base64"}),
        ([15339, 1917], {}),
        ([[15339, 1917], [1917]], {}),
        (["hello", "world"], {"dimensions": 4}),
    ],
)
def test_embeddings(proxy: Proxy, model: Any, inputs: Any, kwargs: dict[str, Any]) -> None:
    result = client(proxy).embeddings.create(model=model("echo"), input=inputs, **kwargs)
    count = 1 if isinstance(inputs, str) or isinstance(inputs[0], int) else len(inputs)
    assert [d.index for d in result.data] == list(range(count))
    for item in result.data:
        vector = item.embedding
        if kwargs.get("encoding_format") == "base64":  # asked for explicitly: the SDK hands it over as sent
            assert isinstance(vector, str)
            vector = list(array.array("f", base64.b64decode(vector)))
        assert len(vector) == kwargs.get("dimensions", 8)
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)


def test_embeddings_same_vector_on_every_encoding(proxy: Proxy, model: Any) -> None:
    api = client(proxy)
    plain = api.embeddings.create(model=model("echo"), input="hello", encoding_format="float")
    packed = api.embeddings.create(model=model("echo"), input="hello")  # the SDK asks for base64
    assert packed.data[0].embedding == pytest.approx(plain.data[0].embedding, rel=1e-6)


@pytest.mark.parametrize(
    ("stem", "error", "extra"),
    [
        ("nope", openai.NotFoundError, {}),
        ("e400", openai.BadRequestError, {}),
        ("e429", openai.RateLimitError, {}),
        ("reject", openai.UnprocessableEntityError, {"response_format": Person}),
    ],
)
def test_errors(proxy: Proxy, model: Any, stem: str, error: type[Exception], extra: dict[str, Any]) -> None:
    api = client(proxy)
    with pytest.raises(error) as caught:
        if extra:
            api.chat.completions.parse(model=model(stem), messages=HELLO, **extra)
        else:
            api.chat.completions.create(model=model(stem), messages=HELLO)
    assert isinstance(caught.value, openai.APIStatusError)
    assert isinstance(caught.value.body, dict) and caught.value.body.get("message")


def test_models(proxy: Proxy, model: Any) -> None:
    api = client(proxy)
    assert model("echo") in {m.id for m in api.models.list()}
    assert api.models.retrieve(model("echo")).id == model("echo")
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve("no-such-model")


def test_unsupported_endpoint(proxy: Proxy) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(proxy).images.generate(prompt="a cat", model="dall-e-3")
    body = caught.value.body
    assert isinstance(body, dict) and body.get("code") == "unsupported_endpoint", json.dumps(body)
