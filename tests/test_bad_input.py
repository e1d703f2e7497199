"""Every bad-input row of the contract's error table, over raw HTTP and the SDK, against the real server."""

from __future__ import annotations

import socket
import threading

import httpx
import openai
import pytest


@pytest.fixture
def proxy(make_config, start_proxy):
    config = make_config(
        {
            "echo": {"deployments": [{"model": "mock/echo"}]},
            "secret": {"deployments": [{"model": "mock/echo"}]},
        },
        server={"max_body_bytes": 65536},
        policies={"lenient": {"description": "no checks"}},
        auth={
            "keys": [
                {"name": "team-a", "key": "sk-team-a", "models": ["echo"]},
                {"name": "admin", "key": "sk-admin", "models": ["*"], "allow_policy_override": True},
            ]
        },
    )
    return start_proxy(config)


def post(proxy, body, key="sk-team-a", **kw):
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json", **kw.pop("headers", {})}
    if not isinstance(body, dict | list):
        return httpx.post(proxy.url + "/v1/chat/completions", content=body, headers=headers, timeout=10, **kw)
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers, timeout=10, **kw)


def assert_error(response, status, type_, code=None, param=...):
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["type"] == type_
    if code is not None:
        assert err["code"] == code
    if param is not ...:
        assert err["param"] == param
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"]
    return err


@pytest.mark.parametrize("body", [b'{"model":', b"not json", b"", b"\xff\xfe"])
def test_not_json(proxy, body):
    assert_error(post(proxy, body), 400, "invalid_request_error", "invalid_json", None)


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"42"])
def test_not_an_object(proxy, body):
    assert_error(post(proxy, body), 400, "invalid_request_error", "invalid_json")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "model"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 7, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "echo"}, "messages"),
        ({"model": "echo", "messages": "hi"}, "messages"),
        ({"model": "echo", "messages": []}, "messages"),
        ({"model": "echo", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "echo", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "echo", "messages": ["x"]}, "messages[0]"),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            "temperature",
        ),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "n": 10**9}, "n"),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**12},
            "max_tokens",
        ),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        (
            {
                "model": "echo",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "xml"},
            },
            "response_format",
        ),
        (
            {
                "model": "echo",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function"}],
            },
            "tools[0]",
        ),
    ],
)
def test_missing_or_ill_typed_field(proxy, body, param):
    assert_error(post(proxy, body), 400, "invalid_request_error", param=param)


def test_deep_nesting_and_nan(proxy):
    deep = b'{"model":"echo","messages":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    assert_error(post(proxy, deep), 400, "invalid_request_error")
    nan = b'{"model":"echo","messages":[{"role":"user","content":"x"}],"temperature":NaN}'
    assert_error(post(proxy, nan), 400, "invalid_request_error", "invalid_json")


def test_unknown_model_is_404_and_sdk_not_found(proxy):
    assert_error(
        post(proxy, {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, key="sk-admin"),
        404,
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-admin", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    "auth", [None, "", "Bearer", "Bearer wrong", "Basic sk-team-a", "Bearer ' OR 1=1 --"]
)
def test_missing_or_wrong_key(proxy, auth):
    headers = {} if auth is None else {"authorization": auth}
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        headers=headers,
        json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
    )
    err = assert_error(r, 401, "authentication_error", "invalid_api_key")
    assert err["message"] == "Invalid API key provided."
    assert "wrong" not in r.text and "OR 1=1" not in r.text


def test_key_may_not_use_alias_or_override_policy(proxy):
    body = {"model": "secret", "messages": [{"role": "user", "content": "x"}]}
    assert_error(post(proxy, body), 403, "permission_error")
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}]}
    assert_error(post(proxy, body, headers={"x-guardproxy-policy": "strict-json"}), 403, "permission_error")
    ok = post(proxy, body, key="sk-admin", headers={"x-guardproxy-policy": "lenient"})
    assert ok.status_code == 200 and ok.headers["x-guardproxy-policy"] == "lenient"


def test_models_filtered_by_key(proxy):
    r = httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer sk-team-a"})
    assert [m["id"] for m in r.json()["data"]] == ["echo"]
    assert httpx.get(proxy.url + "/v1/models").status_code == 401


def test_body_too_large_with_length(proxy):
    body = b'{"model":"echo","messages":[{"role":"user","content":"' + b"x" * 200_000 + b'"}]}'
    assert_error(post(proxy, body), 413, "invalid_request_error", "request_too_large")


def test_body_too_large_chunked_stops_reading(proxy):
    """A chunked body with no length: the server answers 413 once past the limit, without reading 20 MB."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer sk-team-a\r\n"
        b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    sent, answer = 0, b""
    sock.settimeout(0.05)
    try:
        while sent < 20_000_000 and not answer:
            sock.sendall(b"2710\r\n" + b"x" * 10_000 + b"\r\n")
            sent += 10_000
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(5)
    try:
        while b"\r\n\r\n" not in answer or b"}}" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    except OSError:
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"request_too_large"' in answer
    assert sent < 1_000_000


def test_header_too_large_is_431(proxy):
    r = post(
        proxy,
        {"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-padding": "p" * 20_000},
    )
    assert r.status_code in (431, 400)
    if r.status_code == 431:
        assert r.json()["error"]["code"] == "headers_too_large"


def test_unknown_route_is_openai_shaped(proxy):
    r = httpx.get(proxy.url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_provider_settings_in_body_never_used(proxy):
    """api_base and friends, top-level and nested, are dropped: a listener there gets no connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    hits = []

    def watch():
        for _ in range(15):
            try:
                conn, _ = listener.accept()
                hits.append(1)
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=watch)
    thread.start()
    evil = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "safe", "api_base": evil}],
        "api_base": evil,
        "base_url": evil,
        "api_key": "sk-attacker",
        "custom_llm_provider": "openai",
        "mock_response": "pwned",
        "litellm_params": {"api_base": evil},
        "extra_body": {"api_base": evil},
        "metadata": {"api_base": {"nested": evil}, "note": "ok"},
    }
    r = post(proxy, body)
    thread.join()
    listener.close()
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "safe"
    assert hits == []


@pytest.mark.parametrize("role", [{}, [], ["user"], 7, None])
def test_a_role_that_is_not_a_string_is_400(proxy, role) -> None:
    """An unhashable role once reached a set lookup and answered 500 (found by schemathesis)."""
    for path, body in (
        ("/v1/chat/completions", {"model": "echo", "messages": [{"role": role, "content": "hi"}]}),
        ("/v1/responses", {"model": "echo", "input": [{"type": "message", "role": role, "content": []}]}),
    ):
        r = httpx.post(proxy.url + path, json=body, headers={"authorization": "Bearer sk-team-a"}, timeout=10)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["param"].endswith(".role")
