"""Property-based tests: the request parser only ever raises InvalidRequest, the cache key ignores key
order, and whatever deterministic repair returns passes every validator."""

from __future__ import annotations

import fnmatch
import json
import random
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from proxy.auth import Caller
from proxy.cache import cache_key
from proxy.errors import InvalidRequest
from proxy.settings import LimitSettings
from proxy.wire import decode_body, parse_chat_request
from validators import Output, RequestContext, check, default_registry, repair

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = LimitSettings(max_messages=8, max_tools=4, max_schema_depth=6, max_stop=2)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
KEYS = ["role", "content", "name", "tool_calls", "tool_call_id", "type", "text", "function", "arguments"]
ROLES = ["system", "developer", "user", "assistant", "tool", "function", "wizard", ""]
message_like = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES)}, optional={"content": st.text(max_size=8) | json_values}
).flatmap(
    lambda m: st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), json_values, max_size=3).map(
        lambda extra: {**extra, **m}
    )
)
FIELDS = [
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "max_tokens", "seed",
    "response_format", "tools", "stop", "metadata", "user", "presence_penalty", "top_logprobs", "api_base",
]  # fmt: skip
CORE = {
    "model": st.one_of(st.just("echo"), st.just("echo"), st.sampled_from(["", " "]), json_values),
    "messages": st.one_of(
        st.lists(message_like, min_size=1, max_size=10),
        st.lists(message_like | json_values, max_size=10),
        json_values,
    ),
}
EXTRA = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=6)
VALID_CORE = {"model": st.just("echo"), "messages": st.lists(message_like, min_size=1, max_size=6)}
requests = st.one_of(
    st.fixed_dictionaries(VALID_CORE), st.fixed_dictionaries(CORE), st.fixed_dictionaries({}, optional=CORE)
).flatmap(lambda core: EXTRA.map(lambda extra: {**extra, **core}))


@FAST
@given(requests)
def test_parser_raises_only_invalid_request(data: dict[str, Any]) -> None:
    try:
        chat = parse_chat_request(data, LIMITS)
    except InvalidRequest as exc:
        assert exc.status_code == 400 and exc.message
        event(f"400 {exc.param}")
        return
    event("accepted")
    assert chat.model == data["model"] and isinstance(chat.body["messages"], list)
    assert "api_base" not in chat.body  # never forwarded


@FAST
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_body_decoder_raises_only_invalid_request(raw: bytes) -> None:
    try:
        assert isinstance(decode_body(raw), dict)
    except InvalidRequest as exc:
        assert exc.code == "invalid_json"


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = [(k, _shuffled(v, rng)) for k, v in value.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _key(request: dict[str, Any], scope: str | None = "a" * 64) -> str:
    return cache_key(
        request=request,
        alias="echo",
        deployments=["mock/echo"],
        policy_name="default",
        policy_hash="h",
        scope_key_hash=scope,
    )


@FAST
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8), st.integers())
def test_cache_key_ignores_key_order(request: dict[str, Any], seed: int) -> None:
    shuffled = _shuffled(request, random.Random(seed))
    assert _key(shuffled) == _key(request)
    assert _key(request, scope="b" * 64) != _key(request)  # the caller's key is always part of it


FIELD_TYPES = ["string", "integer", "number", "boolean"]
schemas = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=5), st.sampled_from(FIELD_TYPES), min_size=1, max_size=5
).flatmap(
    lambda props: st.tuples(
        st.just(props), st.lists(st.sampled_from(sorted(props)), unique=True), st.booleans()
    )
)
DEFECTS = ["fence", "prose", "trailing_comma", "single_quotes", "truncated", "stringly", "none"]
SAMPLE = {"string": "v", "integer": 7, "number": 1.5, "boolean": True}


def _broken(doc: dict[str, Any], defect: str) -> str:
    text = json.dumps(doc)
    if defect == "fence":
        return f"```json\n{text}\n```"
    if defect == "prose":
        return f"Here you go: {text} Hope that helps!"
    if defect == "trailing_comma":
        return text[:-1] + ",}" if doc else text
    if defect == "single_quotes":
        return text.replace('"', "'")
    if defect == "truncated":
        return text[: max(1, len(text) // 2)]
    if defect == "stringly":
        return json.dumps({k: str(v) for k, v in doc.items()})
    return text


REGISTRY = default_registry(plugins=False)
VALIDATORS = [
    REGISTRY.create({"type": "json"}),
    REGISTRY.create({"type": "json_schema", "schema": "response_format"}),
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas, st.sampled_from(DEFECTS), st.data())
def test_repaired_output_always_validates(spec: Any, defect: str, data: st.DataObject) -> None:
    props, required, closed = spec
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in props.items()},
        "required": required,
        "additionalProperties": not closed,
    }
    ctx = RequestContext(
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    )
    keep = data.draw(st.lists(st.sampled_from(sorted(props)), unique=True))
    doc = {name: SAMPLE[props[name]] for name in keep}
    if data.draw(st.booleans()):
        doc["zz_extra"] = "x"
    text = data.draw(st.just(_broken(doc, defect)) | st.text(max_size=40))
    output = Output(text=text)
    result = repair(VALIDATORS, output, ctx)
    event("repaired" if result is not None else "refused")
    if result is None:
        return  # refusing to repair is always allowed
    assert check(VALIDATORS, result.output, ctx) == []
    assert result.changes or check(VALIDATORS, output, ctx) == []


_GLOB = st.text(alphabet="ab-*?[]!.", max_size=6)


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(_GLOB, max_size=3), alias=st.text(alphabet="ab-.*?[]", max_size=6))
def test_a_keys_model_globs_match_as_fnmatch_does(patterns: list[str], alias: str) -> None:
    """`Caller.may_use` compiles a key's globs once; it must agree with fnmatch on every alias."""
    caller = Caller(name="k", key_hash=None, models=tuple(patterns))
    assert caller.may_use(alias) == any(fnmatch.fnmatchcase(alias, p) for p in patterns)
