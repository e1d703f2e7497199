"""End to end through the real server with the official SDK: non-stream, stream, sync and async."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
RF = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}


@pytest.fixture
def proxy(make_config, start_proxy):
    config = make_config(
        {
            "echo": {"deployments": [{"model": "mock/echo"}]},
            "structured": {
                "policy": "strict-json",
                "deployments": [{"model": "mock/schema", "mock": {"seed": 3}}],
            },
        }
    )
    return start_proxy(config)


def test_non_stream_echo_sync(proxy, client_for):
    client = client_for(proxy)
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "hello guardproxy"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello guardproxy"
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-guardproxy-outcome"] == "pass"
    assert raw.headers["x-guardproxy-attempts"] == "1"
    assert raw.headers["x-guardproxy-deployment"] == "mock/echo"
    assert raw.headers["x-guardproxy-policy"] == "default"
    assert raw.headers["x-guardproxy-cache"] == "miss"
    assert len(raw.headers["x-guardproxy-cache-key"]) == 64
    assert raw.headers["x-request-id"]
    assert int(raw.headers["x-guardproxy-total-tokens"]) == completion.usage.total_tokens > 0


def test_stream_equals_non_stream(proxy, client_for):
    client = client_for(proxy)
    messages = [{"role": "user", "content": "a fairly long sentence that will be split into several chunks"}]
    whole = client.chat.completions.create(
        model="echo", messages=messages, extra_headers={"cache-control": "no-store"}
    )
    chunks = list(
        client.chat.completions.create(
            model="echo", messages=messages, stream=True, extra_headers={"cache-control": "no-store"}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


def test_stream_usage_chunk(proxy, client_for):
    client = client_for(proxy)
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "count me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_structured_output_is_valid_json(proxy, client_for):
    import jsonschema

    client = client_for(proxy)
    completion = client.chat.completions.create(
        model="structured", messages=[{"role": "user", "content": "a person"}], response_format=RF
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content), SCHEMA)


def test_async_client_concurrent(proxy, async_client_for):
    async def main() -> list[str]:
        client = async_client_for(proxy)
        try:
            results = await asyncio.gather(
                *[
                    client.chat.completions.create(
                        model="echo", messages=[{"role": "user", "content": f"msg {i}"}]
                    )
                    for i in range(10)
                ]
            )
            streamed = await client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "streamed async"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
            return [r.choices[0].message.content for r in results] + [text]
        finally:
            await client.close()

    out = asyncio.run(main())
    assert out[:10] == [f"msg {i}" for i in range(10)]
    assert out[10] == "streamed async"


def test_models_and_health(proxy, client_for):
    models = client_for(proxy).models.list()
    assert sorted(m.id for m in models.data) == ["echo", "structured"]
    r = httpx.get(proxy.url + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["x-request-id"]


def test_request_id_is_echoed(proxy):
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        headers={"x-request-id": "my-trace-42"},
        json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "my-trace-42"


def test_embeddings_through_sdk(make_config, start_proxy, client_for):
    proxy = start_proxy(
        make_config({"embed": {"deployments": [{"model": "mock/echo", "mock": {"dimensions": 8}}]}})
    )
    client = client_for(proxy)
    result = client.embeddings.create(model="embed", input=["alpha", "beta", "alpha"])
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 3 and all(len(v) == 8 for v in vectors)
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-6
