"""What the cache stores and when (never failures), its TTLs, Cache-Control, and embeddings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.helpers import post, wait_until
from tests.servers import ServerThread
from tests.servers import mock_calls as calls

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
RF = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
MOCK: dict[str, Any] = {
    "echo": None,
    "vec": {"behaviour": "echo", "dimensions": 4},
    "e400": {"behaviour": "error", "status": 400, "message": "context too long"},
    "e500": {"behaviour": "error", "status": 500},
    "missing": {"behaviour": "broken-json", "defect": "missing_required"},
    "cut": {
        "behaviour": "script",
        "script": [{"behaviour": "echo", "stream_cut": True, "stream_chunk_chars": 4}, {"behaviour": "echo"}],
    },
    "seq": {
        "behaviour": "script",
        "script": [{"behaviour": "static", "content": w} for w in ("one", "two", "three")],
    },
}


def ask(model: str, text: str = "hello there", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def metric(http: httpx.Client, server: ServerThread, result: str) -> float:
    prefix = f'guardproxy_cache_total{{result="{result}"}} '
    lines = [x for x in http.get(server.url + "/metrics").text.splitlines() if x.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


@pytest.fixture
def build(make_config: Callable[..., Path], start_proxy: Callable[..., ServerThread], upstream: ServerThread):
    def net(label: str) -> dict[str, Any]:
        return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-up"}

    def make(cache: dict[str, Any] | None = None) -> ServerThread:
        models = {label: {"deployments": [net(label)]} for label in ("echo", "vec", "e400", "e500", "seq")}
        models["missing"] = {"policy": "strict", "deployments": [net("missing")]}
        models["cut"] = {"policy": "live", "deployments": [net("cut")]}
        models["long"] = {"policy": "long", "deployments": [net("echo")]}
        models["off"] = {"policy": "off", "deployments": [net("echo")]}
        policies = {
            "strict": {"on_fail": ["repair", "reject"]},
            "live": {"stream": "passthrough"},
            "long": {"cache": {"ttl": 3600}},
            "off": {"cache": {"enabled": False}},
        }
        return start_proxy(make_config(models, policies=policies, cache=cache))

    return make


@pytest.fixture
def proxy(build: Callable[..., ServerThread]) -> ServerThread:
    return build()


@pytest.mark.parametrize(("model", "status"), [("e400", 400), ("e500", 502)])
def test_upstream_errors_are_never_stored(http, proxy, upstream, model, status):
    seen = 0
    for _ in range(2):
        r = post(http, proxy, ask(model))
        assert r.status_code == status, r.text
        assert r.headers["x-guardproxy-cache"] == "miss" and "error" in r.json()
        assert calls(http, upstream, model) > seen  # every round reached the upstream again
        seen = calls(http, upstream, model)


def test_a_rejected_answer_is_never_stored(http, proxy, upstream):
    for round_ in (1, 2):
        r = post(http, proxy, ask("missing", response_format=RF))
        assert r.status_code == 422 and r.headers["x-guardproxy-outcome"] == "rejected"
        assert r.headers["x-guardproxy-cache"] == "miss"
        assert calls(http, upstream, "missing") == round_


def test_a_cut_stream_is_never_stored(http, proxy, upstream, client_for):
    text = "a long answer that the upstream cuts half way through " * 3
    stream = client_for(proxy).chat.completions.create(
        model="cut", messages=[{"role": "user", "content": text}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert 0 < len("".join(received)) < len(text)  # bytes reached the client before the cut
    after = post(http, proxy, ask("cut", text))
    assert after.status_code == 200 and after.headers["x-guardproxy-cache"] == "miss"
    assert after.json()["choices"][0]["message"]["content"] == text
    assert post(http, proxy, ask("cut", text)).headers["x-guardproxy-cache"] == "hit"
    assert calls(http, upstream, "cut") == 2


def test_config_ttl_expires_and_a_policy_ttl_overrides_it(http, build, upstream, tmp_path):
    proxy = build({"backend": "disk", "path": str(tmp_path / "cache"), "ttl": 1})
    bodies = {"echo": ask("echo", "short lived"), "long": ask("long", "long lived")}
    for body in bodies.values():
        assert [post(http, proxy, body).headers["x-guardproxy-cache"] for _ in range(2)] == ["miss", "hit"]
    wait_until(lambda: post(http, proxy, bodies["echo"]).headers["x-guardproxy-cache"] == "miss")  # 1 s TTL
    assert (
        post(http, proxy, bodies["long"]).headers["x-guardproxy-cache"] == "hit"
    )  # the policy's 3600 s did not
    assert calls(http, upstream, "echo") == 3


def test_cache_control_refresh_and_bypass(http, proxy, upstream):
    def content(r: httpx.Response) -> str:
        return str(r.json()["choices"][0]["message"]["content"])

    def state(r: httpx.Response) -> tuple[str, str, str]:
        return r.headers["x-guardproxy-cache"], r.headers["x-guardproxy-attempts"], content(r)

    assert state(post(http, proxy, ask("seq"))) == ("miss", "1", "one")
    assert state(post(http, proxy, ask("seq"))) == ("hit", "0", "one")
    assert state(post(http, proxy, ask("seq"), **{"cache-control": "no-cache"})) == ("refresh", "1", "two")
    assert state(post(http, proxy, ask("seq"))) == ("hit", "0", "two")  # the refresh was stored
    assert state(post(http, proxy, ask("seq"), **{"cache-control": "no-store"})) == ("bypass", "1", "three")
    assert state(post(http, proxy, ask("seq"))) == ("hit", "0", "two")  # the bypass was not
    fresh = ask("seq", "never stored")
    assert state(post(http, proxy, fresh, **{"cache-control": "max-age=0, No-Store"}))[0] == "bypass"
    assert state(post(http, proxy, fresh))[:2] == ("miss", "1")
    assert calls(http, upstream, "seq") == 5
    assert (metric(http, proxy, "refresh"), metric(http, proxy, "bypass"), metric(http, proxy, "hit")) == (
        1,
        2,
        3,
    )


def test_a_policy_with_caching_off_bypasses(http, proxy, upstream):
    for _ in range(2):
        r = post(http, proxy, ask("off", "not for the cache"))
        assert (r.headers["x-guardproxy-cache"], r.headers["x-guardproxy-attempts"]) == ("bypass", "1")
    assert calls(http, upstream, "echo") == 2


def test_backend_none_bypasses_everything(http, build, upstream):
    proxy = build({"backend": "none"})
    for _ in range(2):
        r = post(http, proxy, ask("echo"))
        assert r.status_code == 200
        assert (r.headers["x-guardproxy-cache"], r.headers["x-guardproxy-attempts"]) == ("bypass", "1")
        e = post(http, proxy, {"model": "vec", "input": "x"}, route="embeddings")
        assert e.status_code == 200 and e.headers["x-guardproxy-cache"] == "bypass"
    assert (calls(http, upstream, "echo"), calls(http, upstream, "vec")) == (2, 2)


def test_embeddings_are_cached(http, proxy, upstream, client_for):
    api = client_for(proxy).embeddings.with_raw_response
    first = api.create(model="vec", input=["alpha", "beta"])
    assert first.headers["x-guardproxy-cache"] == "miss" and first.headers["x-guardproxy-attempts"] == "1"
    again = api.create(model="vec", input=["alpha", "beta"], user="someone-else")
    assert again.headers["x-guardproxy-cache"] == "hit" and again.headers["x-guardproxy-attempts"] == "0"
    assert again.headers["x-guardproxy-cache-key"] == first.headers["x-guardproxy-cache-key"]
    assert again.headers["x-guardproxy-deployment"] == "openai/vec"
    vectors = [d.embedding for d in again.parse().data]
    assert vectors == [d.embedding for d in first.parse().data] and len(vectors) == 2
    others = [
        api.create(model="vec", input=["alpha", "gamma"]),
        api.create(model="vec", input=["alpha", "beta"], dimensions=3),
        api.create(
            model="vec", input=["alpha", "beta"], encoding_format="float"
        ),  # the SDK sends base64 unless told
    ]
    keys = {r.headers["x-guardproxy-cache-key"] for r in [first, *others]}
    assert len(keys) == 4 and all(r.headers["x-guardproxy-cache"] == "miss" for r in others)
    chat = post(http, proxy, ask("vec", "alpha"))
    assert chat.headers["x-guardproxy-cache-key"] not in keys  # chat and embeddings never share entries
    assert calls(http, upstream, "vec") == 5
