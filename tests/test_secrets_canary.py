"""THE canary sweep: a canary provider key and a canary client key go through success, 4xx, upstream
error, timeout and validation-failure paths; then every log line, audit line, metric, response body and
header, and cache file is searched for either canary (and its SHA-256): zero hits."""

from __future__ import annotations

import hashlib
import logging

import httpx
import pytest

from proxy.logs import JsonFormatter, TextFormatter
from proxy.mock.server import create_mock_app
from tests.servers import ServerThread

# Not key-shaped on purpose (no `sk-` prefix): only a real redaction layer keeps them out, not a regex.
PROVIDER = "gpCanaryProv7Q2xR9vT4mZ8wK3jL5n"
CLIENT = "gpCanaryClient3Hf8Ns1Wq6Ye2Ud9Po"
NEEDLES = [s.encode() for c in (PROVIDER, CLIENT) for s in (c, hashlib.sha256(c.encode()).hexdigest())]


def _mock_options(base_hint: str) -> dict[str, dict[str, object]]:
    leak = f"Incorrect API key provided: {PROVIDER}. Sent to {base_hint}?api_key={PROVIDER}"
    return {
        "ok": {"behaviour": "echo"},
        "e400": {"behaviour": "error", "status": 400, "message": leak},
        "e401": {"behaviour": "error", "status": 401, "message": leak},
        "e429": {"behaviour": "error", "status": 429, "message": leak},
        "e500": {"behaviour": "error", "status": 500, "message": leak},
        "hang": {"behaviour": "timeout"},
        "html": {"behaviour": "malformed", "body": "html"},
        "cut": {"behaviour": "stream_error", "content": "partial answer", "message": leak},
    }


@pytest.fixture
def upstream():
    server = ServerThread(create_mock_app(_mock_options("http://upstream.invalid/v1"))).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(make_config, start_proxy, upstream, monkeypatch):
    monkeypatch.setenv("CANARY_PROVIDER_TOKEN", PROVIDER)
    monkeypatch.setenv("CANARY_CLIENT_TOKEN", CLIENT)
    base = upstream.url + "/v1"

    def net(label, transport="direct", timeout=5.0):
        return {
            "model": f"openai/{label}",
            "api_base": base,
            "api_key": "${CANARY_PROVIDER_TOKEN}",
            "transport": transport,
            "timeout": timeout,
        }

    def mock(behaviour, **options):
        return {
            "model": f"mock/{behaviour}",
            "api_key": "${CANARY_PROVIDER_TOKEN}",
            "timeout": 1,
            "mock": options,
        }

    models = {
        "net-ok": {"deployments": [net("ok")]},
        "net-ok-litellm": {"deployments": [net("ok", "litellm")]},
        "net-400": {"deployments": [net("e400"), net("e400", "litellm")]},
        "net-401": {"deployments": [net("e401"), net("e401", "litellm")]},
        "net-429": {"deployments": [net("e429"), net("e429", "litellm")]},
        "net-500": {"deployments": [net("e500"), net("e500", "litellm")]},
        "net-hang": {"deployments": [net("hang", timeout=0.3), net("hang", "litellm", 0.3)]},
        "net-html": {"deployments": [net("html")]},
        "net-cut": {"deployments": [net("cut")]},
        "mock-ok": {"deployments": [mock("echo")]},
        "mock-401": {"deployments": [mock("error", status=401)]},
        "mock-500": {"deployments": [mock("error", status=500)]},
        "mock-hang": {"deployments": [mock("timeout")]},
        "strict": {"policy": "strict-json", "deployments": [mock("broken-json", defect="truncated")]},
        "refused": {"policy": "deny-all", "deployments": [mock("static", content="nothing good")]},
    }
    config = make_config(
        models,
        policies={
            "deny-all": {"validators": [{"type": "regex", "deny": ["good"]}], "on_fail": ["reask", "reject"]}
        },
        auth={
            "keys": [
                {"name": "canary-team", "key": "${CANARY_CLIENT_TOKEN}", "models": ["*"], "admin": True},
                {"name": "narrow", "key": "sk-narrow-key-000", "models": ["mock-ok"]},
            ]
        },
        retry={"attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.05, "deadline": 4},
    )
    return start_proxy(config)


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def _requests() -> list[tuple[str, str, dict[str, object], dict[str, str]]]:
    """(label, path, body, headers) for every path of the sweep."""
    auth = {"authorization": f"Bearer {CLIENT}"}
    msg = [{"role": "user", "content": "hello there"}]
    rf = {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}}
    chat = "/v1/chat/completions"
    aliases = ["net-ok", "net-ok-litellm", "net-400", "net-401", "net-429", "net-500", "net-hang", "net-html"]
    aliases += ["mock-ok", "mock-401", "mock-500", "mock-hang", "refused"]
    out = [(alias, chat, {"model": alias, "messages": msg}, auth) for alias in aliases]
    for alias in ("net-ok", "net-cut", "net-500", "mock-ok"):
        out.append((f"{alias} stream", chat, {"model": alias, "messages": msg, "stream": True}, auth))
    out += [
        ("strict", chat, {"model": "strict", "messages": msg, "response_format": rf}, auth),
        ("embed net", "/v1/embeddings", {"model": "net-ok", "input": "x"}, auth),
        ("embed mock", "/v1/embeddings", {"model": "mock-ok", "input": ["a", "b"]}, auth),
        ("bad body", chat, {"model": "mock-ok", "messages": "bad"}, auth),
        ("unknown model", chat, {"model": "nope", "messages": msg}, auth),
        ("wrong key", chat, {"model": "mock-ok", "messages": msg}, {"authorization": f"Bearer {CLIENT}x"}),
        ("basic", chat, {"model": "mock-ok", "messages": msg}, {"authorization": f"Basic {CLIENT}"}),
        ("bare", chat, {"model": "mock-ok", "messages": msg}, {"authorization": CLIENT}),
        (
            "forbidden",
            chat,
            {"model": "net-ok", "messages": msg},
            {"authorization": "Bearer sk-narrow-key-000"},
        ),
    ]
    return out


def _log_texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    for fmt in (JsonFormatter(), TextFormatter(), logging.Formatter("%(message)s")):
        for record in records:
            texts.append(fmt.format(record))
            if record.exc_info:
                texts.append(fmt.formatException(record.exc_info))
    texts += [repr(r.__dict__) for r in records]
    return texts


def test_canaries_never_leave_the_process(proxy, upstream, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    seen: list[bytes] = []
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        for label, path, body, headers in _requests():
            r = client.post(path, json=body, headers={"cache-control": "no-cache", **headers})
            statuses[label] = r.status_code
            seen.append(r.content)
            seen.extend(f"{k}: {v}".encode() for k, v in r.headers.multi_items())
        for path in ("/metrics", "/v1/models", "/health", "/openapi.json"):
            r = client.get(path, headers={"authorization": f"Bearer {CLIENT}"})
            seen.append(r.content)
            seen.extend(f"{k}: {v}".encode() for k, v in r.headers.multi_items())
        metrics = client.get("/metrics", headers={"authorization": f"Bearer {CLIENT}"}).text
    # every kind of path really ran: success, client errors, upstream refusals, failures, timeouts, 422
    assert {200, 400, 401, 403, 404, 422, 429, 502, 504} <= set(statuses.values()), statuses
    expected = {"net-ok": 200, "net-ok-litellm": 200, "net-400": 400, "net-401": 502, "net-429": 429}
    expected |= {"net-hang": 504, "refused": 422, "wrong key": 401, "forbidden": 403, "mock-401": 502}
    assert {k: statuses[k] for k in expected} == expected
    assert 'guardproxy_upstream_calls_total{deployment="openai/e401"' in metrics

    # the server's records (its threads); the test client's own httpx debug lines carry the key by design
    server_records = [r for r in caplog.records if r.threadName != "MainThread"]
    seen.extend(t.encode() for t in _log_texts(server_records))
    access = [r for r in server_records if r.name == "guardproxy.access"]
    assert len(access) >= len(_requests())  # the access log really was captured
    out, err = capfd.readouterr()
    seen += [out.encode(), err.encode()]
    audit = sorted(tmp_path.glob("audit.jsonl*"))
    assert audit, "no audit file: the 422 path must have written one"
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] + audit
    assert any(p.stat().st_size for p in files)
    seen += [p.read_bytes() for p in files]

    hits = [(needle.decode(), blob[:200]) for blob in seen for needle in NEEDLES if needle in blob]
    assert hits == []
    print(
        f"canary sweep: {len(statuses)} requests {sorted(set(statuses.values()))}, {len(server_records)} log "
        f"records, {len(files)} cache/audit files, {len(seen)} blobs searched, 0 hits"
    )


def test_the_cache_secret_is_scrubbed_like_a_provider_key() -> None:
    """`cache.secret` signs every entry: a log line that carried it would let a reader forge entries."""
    from proxy.logs import config_secrets
    from proxy.settings import Settings

    settings = Settings.model_validate({"cache": {"backend": "redis", "secret": "canary-cache-secret-0123"}})
    assert "canary-cache-secret-0123" in config_secrets(settings)
