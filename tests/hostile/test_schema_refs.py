"""Issue 14, item 1: a JSON Schema may only refer inside itself; guardproxy never fetches one.

An attacker listener on loopback counts every connection; each case must leave it at zero.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.services import load_runtime
from proxy.yamlfile import ConfigError
from tests.servers import ServerThread
from validators import Output, RequestContext, SchemaCache, SchemaProblem
from validators.schema_cache import CompiledSchema


class Listener:
    """A TCP listener that accepts and counts connections (and answers nothing useful)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    spy = Listener()
    yield spy
    spy.close()


def hostile_schemas(port: int) -> list[dict[str, Any]]:
    """Every way a schema was found to point off the document."""
    url = f"http://127.0.0.1:{port}"
    return [
        {"$ref": f"{url}/x"},
        {"type": "object", "properties": {"a": {"$ref": f"https://127.0.0.1:{port}/x"}}},
        {"$ref": "file:///etc/passwd"},
        {"$ref": "urn:example:thing"},
        {"$ref": "../../outside.json"},
        {"$id": f"{url}/root.json", "$ref": "other.json"},
        {"type": "object", "properties": {"a": {"$id": f"{url}/sub/", "$ref": "x.json"}}},
        {"$dynamicRef": f"{url}/dyn"},
        {"$schema": f"{url}/meta", "type": "object"},
        {"$ref": "#/const", "const": {"$ref": f"{url}/hidden"}},
        {"$defs": {"a": {"$ref": f"{url}/deep"}}, "$ref": "#/$defs/a"},
        {"$ref": "#/$defs/missing"},
    ]


@pytest.fixture
def proxy(make_config: Callable[..., Path], start_proxy: Callable[[Path], ServerThread]) -> ServerThread:
    models = {"m": {"deployments": [{"model": "mock/echo"}]}}
    policies = {
        "checked": {
            "validators": [{"type": "json_schema"}, {"type": "tool_calls"}],
            "on_fail": ["repair", "reject"],
        }
    }
    config = make_config(
        {**models, "checked": {"policy": "checked", "deployments": [{"model": "mock/echo"}]}},
        policies=policies,
    )
    return start_proxy(config)


@pytest.mark.parametrize("alias", ["m", "checked"])
def test_response_format_remote_ref_is_400(proxy: ServerThread, listener: Listener, alias: str) -> None:
    with httpx.Client(timeout=10) as http:
        for schema in hostile_schemas(listener.port):
            body = {
                "model": alias,
                "messages": [{"role": "user", "content": '{"a": 1}'}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            }
            r = http.post(proxy.url + "/v1/chat/completions", json=body)
            assert r.status_code == 400, (schema, r.text)
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["param"] == "response_format.json_schema.schema"
    assert listener.connections == 0


def test_tool_parameters_remote_ref_is_400_never_500(
    proxy: ServerThread, listener: Listener, client_for: Callable[..., openai.OpenAI]
) -> None:
    client = client_for(proxy)
    for schema in hostile_schemas(listener.port):
        tools: Any = [
            {"type": "function", "function": {"name": "ok", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "f", "parameters": schema}},
        ]
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="checked", messages=[{"role": "user", "content": "hi"}], tools=tools
            )
        assert caught.value.status_code == 400
        body: Any = caught.value.body
        assert body["param"] == "tools[1].function.parameters", schema
    assert listener.connections == 0


def test_local_refs_still_work(proxy: ServerThread, client_for: Callable[..., openai.OpenAI]) -> None:
    schema = {
        "$id": "https://example.com/person.schema.json",
        "$defs": {"age": {"type": "integer"}, "node": {"$anchor": "n", "type": "object"}},
        "type": "object",
        "properties": {"age": {"$ref": "#/$defs/age"}, "meta": {"$ref": "#n"}},
        "required": ["age"],
    }
    answer = client_for(proxy).chat.completions.with_raw_response.create(
        model="checked",
        messages=[{"role": "user", "content": '{"age": "41", "meta": {}}'}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    assert answer.headers["x-guardproxy-outcome"] == "repaired"
    assert answer.parse().choices[0].message.content == '{"age": 41, "meta": {}}'


def test_policy_schema_with_remote_ref_is_a_config_error(
    make_config: Callable[..., Path], listener: Listener
) -> None:
    for schema in hostile_schemas(listener.port):
        policies = {"bad": {"validators": [{"type": "json_schema", "schema": schema}]}}
        config = make_config(
            {"m": {"policy": "bad", "deployments": [{"model": "mock/echo"}]}}, policies=policies
        )
        with pytest.raises(ConfigError) as caught:
            load_runtime(config)
        assert "validators[0].schema" in str(caught.value), str(caught.value)
    assert listener.connections == 0


def test_policy_schema_file_with_remote_ref_is_a_config_error(
    make_config: Callable[..., Path], listener: Listener, tmp_path: Path
) -> None:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "remote.json").write_text(f'{{"$ref": "http://127.0.0.1:{listener.port}/s"}}')
    policies = {"bad": {"validators": [{"type": "json_schema", "schema": "remote.json"}]}}
    config = make_config({"m": {"policy": "bad", "deployments": [{"model": "mock/echo"}]}}, policies=policies)
    with pytest.raises(ConfigError):
        load_runtime(config)
    assert listener.connections == 0


def test_policy_schema_files_may_refer_to_local_files_only(
    make_config: Callable[..., Path], listener: Listener, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir(exist_ok=True)
    (folder / "defs").mkdir(exist_ok=True)
    (folder / "defs" / "age.json").write_text('{"$defs": {"age": {"type": "integer", "minimum": 0}}}')
    (folder / "person.json").write_text(
        '{"type": "object", "properties": {"age": {"$ref": "defs/age.json#/$defs/age"}}, "required": ["age"]}'
    )
    (tmp_path / "secret.json").write_text('{"type": "string"}')
    (folder / "escape.json").write_text('{"$ref": "../secret.json"}')
    good = {"validators": [{"type": "json_schema", "schema": "person.json"}], "on_fail": ["reject"]}
    config = make_config(
        {"m": {"policy": "good", "deployments": [{"model": "mock/echo"}]}}, policies={"good": good}
    )
    validator = load_runtime(config).policies["good"].validators[0]
    assert validator.check(Output('{"age": 3}'), RequestContext()) == []
    assert validator.check(Output('{"age": -1}'), RequestContext())
    escape = {"validators": [{"type": "json_schema", "schema": "escape.json"}]}
    config = make_config(
        {"m": {"policy": "esc", "deployments": [{"model": "mock/echo"}]}}, policies={"esc": escape}
    )
    with pytest.raises(ConfigError) as caught:
        load_runtime(config)
    assert "points outside the schema" in str(caught.value)
    assert listener.connections == 0


def test_every_validator_has_a_registry_that_retrieves_nothing(listener: Listener) -> None:
    # Even past the compile-time check (which SchemaCache applies), resolution stays in memory.
    compiled = CompiledSchema({"$ref": f"http://127.0.0.1:{listener.port}/x"})
    assert compiled.is_valid(1) is False
    assert [e.message for e in compiled.errors(1)]
    assert listener.connections == 0
    with pytest.raises(SchemaProblem):
        SchemaCache().get({"$ref": f"http://127.0.0.1:{listener.port}/x"})
    assert listener.connections == 0
