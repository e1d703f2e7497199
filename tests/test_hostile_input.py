"""FAULTS.md section A rows not in test_bad_input.py: content types, Host and path tricks, huge headers,
huge numbers, 100k messages, slowloris; each answered fast, in the OpenAI error shape, never a 5xx."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from proxy.app import create_app
from proxy.serving import HeaderTimeoutProtocol
from tests.servers import ServerThread

KEY = "sk-hostile-0001"
GOOD = b'{"model":"echo","messages":[{"role":"user","content":"x"}]}'


@pytest.fixture
def config(make_config):
    return make_config(
        {"echo": {"deployments": [{"model": "mock/echo"}]}},
        auth={"keys": [{"name": "team", "key": KEY, "models": ["*"]}]},
    )


@pytest.fixture
def proxy(config, start_proxy):
    return start_proxy(config)


def raw(port, request: bytes, timeout=10.0) -> bytes:
    """Send bytes as they are (no client-side URL or Host normalisation) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def post(proxy, body: bytes, content_type="application/json", key=KEY):
    headers = {"content-type": content_type, "authorization": f"Bearer {key}"}
    started = time.monotonic()
    r = httpx.post(proxy.url + "/v1/chat/completions", content=body, headers=headers, timeout=20)
    return r, time.monotonic() - started


def assert_error(r, status, code=None, param=...):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and r.headers["x-request-id"]
    if code is not None:
        assert err["code"] == code
    if param is not ...:
        assert err["param"] == param
    return err


def test_multipart_with_pathological_boundary_is_not_parsed(proxy):
    boundary = "-" * 60 + "a" * 4000
    body = (
        f"--{boundary}\r\n" + 'Content-Disposition: form-data; name="x"\r\n\r\n' + "y\r\n" * 20000
    ).encode()
    r, took = post(proxy, body, f"multipart/form-data; boundary={boundary}")
    assert_error(r, 415, "unsupported_media_type", None)  # refused from the header, never parsed
    assert took < 5


def test_only_json_bodies_are_read(proxy):
    """Form and text bodies (what a cross-site form can post without a preflight) get 415."""
    r, _ = post(proxy, b"model=echo&messages=x", "text/plain")
    assert_error(r, 415, "unsupported_media_type")
    r, _ = post(proxy, GOOD, "application/x-www-form-urlencoded")  # curl -d without -H
    assert_error(r, 415, "unsupported_media_type")
    r, _ = post(proxy, GOOD, "Application/JSON; charset=utf-8")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "x"


@pytest.mark.parametrize("host", [b"evil/?", b"x/#", b"evil.example:80/v1/models?", b"127.0.0.1"])
@pytest.mark.parametrize("path", [b"/v1/models", b"/v1/chat/completions", b"/v1/%63hat/completions"])
def test_host_header_tricks_421_or_401(proxy, host, path):
    method = b"GET" if path == b"/v1/models" else b"POST"
    request = (
        method + b" " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(GOOD)).encode() + b"\r\nConnection: close\r\n\r\n" + GOOD
    )
    response = raw(proxy.port, request)
    # a Host the proxy does not serve is refused before anything else (DNS rebinding)
    assert status_of(response) == (401 if host == b"127.0.0.1" else 421), response[:300]
    if status_of(response) == 401:
        assert b'"invalid_api_key"' in response and b"Invalid API key provided." in response


def test_path_tricks_never_bypass_auth(proxy):
    for path in (b"/health/../v1/models", b"/v1/models/", b"//v1/models", b"/v1/models%2f", b"/V1/models"):
        response = raw(
            proxy.port, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        # 307 is Starlette's trailing-slash redirect (to the same route, which then asks for a key)
        assert status_of(response) in (307, 400, 401, 404, 405), (path, response[:200])
        assert b'"object":"list"' not in response  # the model list never leaks


@pytest.mark.parametrize("size", [17 * 1024, 64 * 1024])
def test_huge_authorization_header(proxy, size):
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        content=GOOD,
        headers={"authorization": "Bearer " + "k" * size, "content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code in (431, 401)
    assert "k" * 64 not in r.text
    if r.status_code == 431:
        assert r.json()["error"]["code"] == "headers_too_large"
    else:
        assert r.json()["error"]["message"] == "Invalid API key provided."


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            b'{"model":"echo","messages":[{"role":"user","content":"x"}],"max_tokens":1e400}',
            "invalid_json",
            None,
        ),
        (
            b'{"model":"echo","messages":[{"role":"user","content":"x"}],"n":' + b"9" * 5000 + b"}",
            "invalid_json",
            None,
        ),
        (b'{"model":"echo","messages":[{"role":"user","content":"x"}],"n":99999999999999999999}', None, "n"),
        (
            b'{"model":"echo","messages":[{"role":"user","content":"x"}],"temperature":1e308}',
            None,
            "temperature",
        ),
        (b'{"model":"echo","messages":[{"role":"user","content":"x"}],"seed":-1e300}', None, "seed"),
        (
            b'{"model":"echo","messages":[{"role":"user","content":"x"}],"max_tokens":-0.0}',
            None,
            "max_tokens",
        ),
    ],
)
def test_huge_numbers_are_400(proxy, body, code, param):
    r, took = post(proxy, body)
    assert_error(r, 400, code, param)
    assert took < 5


def test_100k_messages_refused_quickly(proxy):
    body = b'{"model":"echo","messages":[' + b",".join([b'{"role":"user","content":""}'] * 100_000) + b"]}"
    r, took = post(proxy, body)
    assert_error(r, 400, None, "messages")
    assert took < 10
    tools = [b'{"type":"function","function":{"name":"f%d"}}' % i for i in range(10_000)]
    body = GOOD[:-1] + b',"tools":[' + b",".join(tools) + b"]}"
    assert_error(post(proxy, body)[0], 400, None, "tools")


class _HeaderTimeout(HeaderTimeoutProtocol):
    header_timeout = 1.0


@pytest.fixture
def guarded(config):
    """The app under uvicorn with guardproxy's header-deadline protocol (what `guardproxy serve` uses)."""
    server = ServerThread(create_app(config))
    server.server = uvicorn.Server(
        uvicorn.Config(
            server.server.config.app,
            host="127.0.0.1",
            port=0,
            http=_HeaderTimeout,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    server.thread = threading.Thread(target=server.server.run, daemon=True)
    server.start()
    yield server
    server.stop()


def _trickle(port: int, closed_after: list[float], stop: threading.Event) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.2)
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        closed_after.append(time.monotonic() - started)


def test_slowloris_headers_closed_by_header_deadline(guarded):
    closed: list[float] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_trickle, args=(guarded.port, closed, stop)) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    r = httpx.post(
        guarded.url + "/v1/chat/completions",
        content=GOOD,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200  # a normal request is served while 20 connections trickle
    for t in threads:
        t.join(timeout=15)
    stop.set()
    assert len(closed) == 20 and all(0.9 < c < 5 for c in closed), closed  # closed by the 1 s deadline


def test_plain_uvicorn_does_not_bound_trickled_headers(proxy):
    """What uvicorn alone does (no header deadline): the connection stays open; other requests still work.
    This is why `guardproxy serve` runs HeaderTimeoutProtocol (or a front proxy's header timeout)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(2.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing, not even a close, after 2 s
        r, _ = post(proxy, GOOD)
        assert r.status_code == 200


def test_trickled_body_gets_408_and_others_are_served(make_config, start_proxy):
    """A body that trickles after complete headers ends with 408 at server.body_timeout."""
    proxy = start_proxy(
        make_config({"echo": {"deployments": [{"model": "mock/echo"}]}}, server={"body_timeout": 1.0})
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b'content-length: 200\r\n\r\n{"model":'
        )
        started = time.monotonic()
        normal = httpx.post(
            proxy.url + "/v1/chat/completions",
            timeout=10,
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert normal.status_code == 200  # served while the slow body is pending
        answer = b""
        while b"}}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer
    assert 0.5 < waited < 8
