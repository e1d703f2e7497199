"""langchain-openai: invoke, stream, with_structured_output (both methods), bind_tools, OpenAIEmbeddings;
invoke and with_structured_output again over `/v1/responses` (`use_responses_api=True`)."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

from tests.compat.conftest import Proxy

pytestmark = pytest.mark.compat
PROMPT = "Say hello to the compatibility suite."


class Person(BaseModel):
    name: str
    age: int


def chat(proxy: Proxy, name: str) -> ChatOpenAI:
    return ChatOpenAI(model=name, base_url=proxy.base_url, api_key="sk-compat", max_retries=0)


def test_invoke(proxy: Proxy, model: Any) -> None:
    assert chat(proxy, model("echo")).invoke(PROMPT).content == PROMPT


@pytest.mark.parametrize("stem", ["echo", "pii"])
def test_stream(proxy: Proxy, model: Any, stem: str) -> None:
    parts = [chunk.content for chunk in chat(proxy, model(stem)).stream(PROMPT)]
    assert "".join(str(p) for p in parts) == PROMPT


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("stem", ["schema", "fence", "trailing"])
def test_with_structured_output(proxy: Proxy, model: Any, method: str, stem: str) -> None:
    structured = chat(proxy, model(stem)).with_structured_output(Person, method=method)
    assert isinstance(structured.invoke(PROMPT), Person)


def test_bind_tools(proxy: Proxy, model: Any) -> None:
    def get_weather(city: str, unit: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    message = chat(proxy, model("schema")).bind_tools([get_weather]).invoke("Weather in Paris?")
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    assert set(message.tool_calls[0]["args"]) == {"city", "unit"}


@pytest.fixture
def responses_chat(proxy: Proxy) -> Any:
    """ChatOpenAI on `/v1/responses`; every call it makes is checked to go there, not to chat."""
    paths: list[str] = []

    def build(name: str) -> ChatOpenAI:
        http = httpx.Client(event_hooks={"request": [lambda request: paths.append(request.url.path)]})
        return ChatOpenAI(
            model=name,
            base_url=proxy.base_url,
            api_key="sk-compat",
            max_retries=0,
            use_responses_api=True,
            http_client=http,
        )

    yield build
    assert paths and set(paths) == {"/v1/responses"}


def test_responses_api_invoke(responses_chat: Any, model: Any) -> None:
    message = responses_chat(model("echo")).invoke(PROMPT)
    assert message.text == PROMPT and message.response_metadata["id"].startswith("resp_")
    assert message.usage_metadata and message.usage_metadata["total_tokens"] > 0


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("stem", ["schema", "fence"])  # fence: repaired on the Responses route too
def test_responses_api_with_structured_output(
    responses_chat: Any, model: Any, method: str, stem: str
) -> None:
    structured = responses_chat(model(stem)).with_structured_output(Person, method=method)
    assert isinstance(structured.invoke(PROMPT), Person)


def test_embeddings_defaults(proxy: Proxy, model: Any) -> None:
    """Defaults: token ids (tiktoken), batched, base64-free float decoding by the SDK."""
    embeddings = OpenAIEmbeddings(
        model=model("echo"), base_url=proxy.base_url, api_key="sk-compat", max_retries=0
    )
    vectors = embeddings.embed_documents(["hello world", "goodbye"])
    query = embeddings.embed_query("hello world")
    assert len(vectors) == 2 and all(len(v) == 8 for v in vectors)
    assert math.isclose(math.fsum(x * x for x in query), 1.0, rel_tol=1e-5)
    assert query == pytest.approx(vectors[0], rel=1e-6)
