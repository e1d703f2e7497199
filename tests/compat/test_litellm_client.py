"""litellm as a client: `openai/<alias>` with api_base at guardproxy (completion, stream, embedding)."""

from __future__ import annotations

from typing import Any

import litellm
import pytest
from pydantic import BaseModel

from tests.compat.conftest import Proxy

pytestmark = pytest.mark.compat
HELLO = [{"role": "user", "content": "Say hello to the compatibility suite."}]


class Person(BaseModel):
    name: str
    age: int


def kw(proxy: Proxy) -> dict[str, Any]:
    return {"api_base": proxy.base_url, "api_key": "sk-compat", "num_retries": 0}


def test_completion(proxy: Proxy, model: Any) -> None:
    response = litellm.completion(model=f"openai/{model('echo')}", messages=HELLO, **kw(proxy))
    assert response.choices[0].message.content == HELLO[0]["content"]


@pytest.mark.parametrize("stem", ["echo", "pii"])
def test_stream(proxy: Proxy, model: Any, stem: str) -> None:
    stream = litellm.completion(model=f"openai/{model(stem)}", messages=HELLO, stream=True, **kw(proxy))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == HELLO[0]["content"]


def test_structured(proxy: Proxy, model: Any) -> None:
    response = litellm.completion(
        model=f"openai/{model('fence')}", messages=HELLO, response_format=Person, **kw(proxy)
    )
    Person.model_validate_json(response.choices[0].message.content)


def test_embedding(proxy: Proxy, model: Any) -> None:
    response = litellm.embedding(model=f"openai/{model('echo')}", input=["hello", "world"], **kw(proxy))
    assert [len(d["embedding"]) for d in response.data] == [8, 8]
