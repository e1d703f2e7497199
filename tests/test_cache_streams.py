"""Streams and the cache through the real server: a stream replays a stored answer as proper chunks, and
a streamed answer, once complete, serves non-stream requests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import ask, post
from tests.servers import ServerThread
from tests.servers import mock_calls as calls


@pytest.fixture
def proxy(make_config, start_proxy, upstream) -> ServerThread:
    dep = {"model": "openai/echo", "api_base": upstream.url + "/v1", "api_key": "sk-up"}
    models = {"echo": {"deployments": [dep]}, "live": {"policy": "live", "deployments": [dep]}}
    return start_proxy(make_config(models, policies={"live": {"stream": "passthrough"}}))


LONG = "stream me " * 20  # 200 characters: several content chunks


def read_stream(stream: Any) -> tuple[list[Any], str]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def check_replay(chunks: list[Any], *, usage: Any) -> None:
    assert len({c.id for c in chunks}) == 1
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 3, "a replayed answer is several chunks, not one lump"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finished] == ["stop"] and chunks.index(finished[0]) > 0
    if usage is None:
        assert all(c.usage is None for c in chunks)
    else:
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == usage["total_tokens"]
        assert all(c.usage is None for c in chunks[:-1])


def test_a_stream_is_served_from_a_non_stream_entry(http, proxy, upstream, client_for):
    first = post(http, proxy, ask(LONG))
    assert first.headers["x-guardproxy-cache"] == "miss"
    api = client_for(proxy).chat.completions.with_raw_response
    messages = [{"role": "user", "content": LONG}]
    for include_usage in (True, False):
        raw = api.create(
            model="echo", messages=messages, stream=True, stream_options={"include_usage": include_usage}
        )
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert raw.headers["x-guardproxy-cache"] == "hit" and raw.headers["x-guardproxy-attempts"] == "0"
        chunks, text = read_stream(raw.parse())
        assert text == LONG and chunks[0].id == first.json()["id"]
        check_replay(chunks, usage=first.json()["usage"] if include_usage else None)
    sse = post(http, proxy, ask(LONG, stream=True))
    events = sse.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""] and all(e.startswith("data: ") for e in events[:-1])
    assert calls(http, upstream) == 1


@pytest.mark.parametrize("model", ["echo", "live"])  # `stream: buffer` (the default) and `passthrough`
def test_a_non_stream_request_is_served_from_a_streamed_entry(http, proxy, upstream, client_for, model):
    api = client_for(proxy).chat.completions.with_raw_response
    messages = [{"role": "user", "content": LONG}]
    raw = api.create(model=model, messages=messages, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-guardproxy-cache"] == "miss"
    chunks, text = read_stream(raw.parse())
    assert text == LONG and chunks[-1].usage is not None
    hit = post(http, proxy, ask(LONG, model))
    assert hit.headers["x-guardproxy-cache"] == "hit" and hit.headers["x-guardproxy-attempts"] == "0"
    assert hit.headers["x-guardproxy-cache-key"] == raw.headers["x-guardproxy-cache-key"]
    assert hit.headers["x-guardproxy-deployment"] == "openai/echo"
    body = hit.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == LONG
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == chunks[-1].usage.total_tokens
    again = api.create(model=model, messages=messages, stream=True, stream_options={"include_usage": True})
    assert again.headers["x-guardproxy-cache"] == "hit"
    replayed, replayed_text = read_stream(again.parse())
    assert replayed_text == LONG
    check_replay(replayed, usage=body["usage"])
    assert calls(http, upstream) == 1


def test_a_replayed_stream_is_framed_like_a_live_one(http, proxy):
    """A hit's events leave in one body, chunked like any event stream: a client that reads lines to the
    end and then reuses its connection (Python's http.client) gets the whole stream twice in a row."""
    import http.client
    import json

    body = json.dumps(ask("framing " * 10, stream=True)).encode()
    host, port = proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        seen = []
        for _ in range(3):  # a miss, then two hits on the same kept-alive connection
            conn.request(
                "POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"}
            )
            response = conn.getresponse()
            assert response.status == 200 and response.getheader("content-length") is None
            lines = []
            while line := response.readline():
                lines.append(line)
            assert lines[-2:] == [b"data: [DONE]\n", b"\n"]
            seen.append(response.getheader("x-guardproxy-cache"))
        assert seen == ["miss", "hit", "hit"]
    finally:
        conn.close()
