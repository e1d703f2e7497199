"""Issue 14, item 8: unauthenticated clients cannot exhaust the proxy, and a browser cannot be made to use it.

Keyless connections take no in-flight slot; every chat route goes through the one guard; bodies must be
`application/json` (415); `Host` must be a served name (421, DNS rebinding).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from proxy.errors import MisdirectedRequest
from proxy.frontdoor import HostCheck
from proxy.settings import ServerSettings

KEY = "sk-front-door-0001"
ADMIN = "sk-front-admin-0002"
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}


def _config(make_config: Any, **server: Any) -> Any:
    keys = [{"name": "app", "key": KEY}, {"name": "ops", "key": ADMIN, "admin": True}]
    models = {
        "echo": {"deployments": [{"model": "mock/echo"}]},
        "slow": {"deployments": [{"model": "mock/echo", "mock": {"latency_ms": 1500}}]},
    }
    return make_config(models, auth={"keys": keys}, server=server)


@pytest.fixture
def narrow(make_config, start_proxy):
    """Four in-flight slots, bodies awaited for 20 s: what a keyless attacker would try to hold."""
    return start_proxy(_config(make_config, max_in_flight=4, body_timeout=20))


def _hold(port: int, headers: bytes) -> socket.socket:
    """A connection that sends a POST's headers, promises a body, and never sends it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + headers
        + b"Content-Length: 1000\r\n\r\n"
    )
    return sock


def _status(sock: socket.socket) -> int:
    sock.settimeout(10)
    head = sock.recv(65536)
    return int(head.split(b" ", 2)[1])


def _gauge(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


@pytest.mark.parametrize("auth", [b"", b"Authorization: Bearer sk-wrong-key\r\n"])
def test_keyless_connections_hold_no_slot(narrow, client_for, auth):
    held = [_hold(narrow.port, auth) for _ in range(16)]  # four times max_in_flight
    try:
        answer = client_for(narrow, key=KEY).chat.completions.create(**CHAT)
        assert answer.choices[0].message.content == "hello"
        assert _gauge(narrow.url, "guardproxy_in_flight") == 0
        # each was refused from its headers at once, without waiting for the body it promised
        assert [_status(sock) for sock in held] == [401] * len(held)
    finally:
        for sock in held:
            sock.close()


def test_keyed_connections_still_count(narrow):
    """The slot is taken after authentication: keyed callers are still bounded by max_in_flight."""
    held = [_hold(narrow.port, f"Authorization: Bearer {KEY}\r\n".encode()) for _ in range(4)]
    try:
        deadline = time.monotonic() + 10
        while _gauge(narrow.url, "guardproxy_in_flight") < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        r = httpx.post(
            narrow.url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {KEY}"}
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_every_chat_route_takes_a_slot(make_config, start_proxy, path):
    proxy = start_proxy(_config(make_config, max_in_flight=1))
    body = {**CHAT, "model": "slow"}
    headers = {"authorization": f"Bearer {KEY}"}
    slow = threading.Thread(
        target=httpx.post, args=(proxy.url + path,), kwargs={"json": body, "headers": headers, "timeout": 30}
    )
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while _gauge(proxy.url, "guardproxy_in_flight") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gauge(proxy.url, "guardproxy_in_flight") == 1  # counted in the gauge
        second = httpx.post(proxy.url + path, json=CHAT, headers=headers, timeout=30)
        assert second.status_code == 503  # and bounded by the same limit
    finally:
        slow.join(timeout=30)


@pytest.fixture
def proxy(make_config, start_proxy):
    return start_proxy(_config(make_config))


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions", "/v1/embeddings"])
def test_non_json_bodies_get_415(proxy, content_type, path):
    headers = {"authorization": f"Bearer {KEY}"}
    if content_type is not None:
        headers["content-type"] = content_type
    body = b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "input": "x"}'
    r = httpx.post(proxy.url + path, content=body, headers=headers, timeout=10)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == {
        "message": r.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": None,
        "code": "unsupported_media_type",
    }


def test_json_with_parameters_is_accepted(proxy):
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json; charset=UTF-8"}
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        content=httpx.Request("POST", "/", json=CHAT).content,
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hello"


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:8080",
        "127.0.0.1.nip.io",
        "localhost.attacker.example",
        "127.0.0.1:80@evil",
        "",
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/ui", "/health"])
def test_rebinding_host_gets_421(proxy, host, path):
    method = "POST" if path.endswith("completions") else "GET"
    headers = {"authorization": f"Bearer {KEY}", "host": host}
    r = httpx.request(
        method, proxy.url + path, json=CHAT if method == "POST" else None, headers=headers, timeout=10
    )
    assert r.status_code == 421, r.text
    assert r.json()["error"]["code"] == "misdirected_request"
    assert "hello" not in r.text


@pytest.mark.parametrize("host", ["127.0.0.1", "LOCALHOST", "[::1]"])
def test_loopback_names_are_served_on_any_port(proxy, host):
    for value in (host, f"{host}:{proxy.port}", f"{host}:1"):
        r = httpx.post(
            proxy.url + "/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {KEY}", "host": value},
        )
        assert r.status_code == 200, (value, r.text)


def test_allowed_hosts_replaces_the_default(make_config, start_proxy):
    proxy = start_proxy(_config(make_config, allowed_hosts=["gateway.internal"]))
    headers = {"authorization": f"Bearer {KEY}"}
    ok = httpx.post(
        proxy.url + "/v1/chat/completions", json=CHAT, headers={**headers, "host": "gateway.internal:443"}
    )
    assert ok.status_code == 200
    assert httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=headers).status_code == 421


def test_default_hosts_follow_the_bind_address():
    loopback, public = HostCheck(ServerSettings(host="127.0.0.1")), HostCheck(ServerSettings(host="0.0.0.0"))
    public.check(b"anything.example:8080")  # bound beyond loopback: any Host unless configured
    loopback.check(b"localhost:8080")
    with pytest.raises(MisdirectedRequest):
        loopback.check(b"anything.example:8080")
    assert HostCheck(ServerSettings(host="::1")).names == {"localhost", "127.0.0.1", "[::1]"}


def test_remembered_hosts_are_only_served_ones():
    check = HostCheck(ServerSettings(host="127.0.0.1"))
    for _ in range(2):  # the second time from memory
        check.check(b"localhost:8080")
        with pytest.raises(MisdirectedRequest):
            check.check(b"evil.example")
    for port in range(200):  # served variants fill the memory; a refused one is still refused after
        check.check(b"127.0.0.1:%d" % port)
    with pytest.raises(MisdirectedRequest):
        check.check(b"evil.example:80")
    check.check(b"[::1]:9")  # a served one past the memory's bound: parsed, still served
