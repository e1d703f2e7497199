"""Streams travel in batches (the chunks of one network read) without changing what a client sees: the
direct transport's parsing stops where a chunk-by-chunk reader stopped, and a passthrough stream commits at
its first text however the provider's chunks were grouped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import UpstreamTransient
from proxy.passthrough import _first_content
from proxy.relay import Relay
from proxy.settings import Deployment
from proxy.upstream.assemble import ChunkAssembler
from proxy.upstream.bounded import Lines
from proxy.upstream.direct import _Chunks, _events
from validators import GuardStep, RequestContext, StreamGuard
from validators.text import RegexValidator

DEP = Deployment(model="openai/x")


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "x", "choices": [choice]}


def payload(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return orjson.dumps(chunk(delta, finish))


# --- the direct transport: one list per read, stopping where a chunk-by-chunk reader stopped -------------


def test_a_read_parses_to_its_chunks_up_to_done():
    chunks = _Chunks(DEP)
    got = chunks.parse([payload({"content": "a"}), payload({}, "stop"), b"[DONE]", payload({"content": "x"})])
    assert [c["choices"][0]["delta"] for c in got] == [{"content": "a"}, {}]
    assert chunks.done and chunks.failure is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"error": {"message": "overloaded"}}', "error event mid-stream: overloaded"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
    ],
)
def test_chunks_before_a_bad_payload_still_come_first(bad, message):
    chunks = _Chunks(DEP)
    got = chunks.parse([payload({"content": "kept"}), bad, payload({"content": "never"})])
    assert [c["choices"][0]["delta"]["content"] for c in got] == ["kept"]
    assert isinstance(chunks.failure, UpstreamTransient) and message in str(chunks.failure)
    assert not chunks.done


class _Content:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def iter_any(self) -> AsyncIterator[bytes]:
        for raw in self.reads:
            yield raw


class _Response:
    def __init__(self, reads: list[bytes]) -> None:
        self.headers: dict[str, str] = {}
        self.content = _Content(reads)


async def _collect(reads: list[bytes], max_line: int = 1 << 20) -> list[list[bytes]]:
    return [batch async for batch in _events(_Response(reads), max_line)]


def test_events_come_one_list_per_read_and_a_split_line_joins_the_next_read():
    reads = [b"data: 1\n\ndata: 2\n\nda", b"ta: 3\n\n: comment\n\n", b"data: 4"]
    assert asyncio.run(_collect(reads)) == [[b"1", b"2"], [b"3"], [b"4"]]


def test_crlf_events_split_between_reads():
    reads = [b"data: 1\r\n\r\ndata: 2\r", b"\n\r\ndata: 3\r\n", b"\r\ndata: 4\r\n\r\n"]
    assert asyncio.run(_collect(reads)) == [[b"1"], [b"2", b"3"], [b"4"]]


def test_events_before_a_line_over_the_limit_still_come_first():
    async def scenario() -> list[list[bytes]]:
        seen: list[list[bytes]] = []
        with pytest.raises(UpstreamTransient, match="line limit"):
            async for batch in _events(_Response([b"data: 1\n\ndata: " + b"x" * 64 + b"\n\n"]), 32):
                seen.append(batch)
        return seen

    assert asyncio.run(scenario()) == [[b"1"]]


# `data:` lines, other fields, comments and blank lines, with LF or CRLF endings and stray whitespace
_sse_line = st.one_of(
    st.binary(max_size=24).map(lambda b: b"data:" + b.replace(b"\n", b"")),
    st.sampled_from([b"", b": keep-alive", b"event: x", b"data", b" data: y", b"data: [DONE] ", b"\r"]),
)
_sse = st.tuples(st.lists(_sse_line, max_size=30), st.sampled_from([b"\n", b"\r\n"])).map(
    lambda lines_and_end: lines_and_end[1].join(lines_and_end[0])
)


@settings(max_examples=300, deadline=None)
@given(_sse, st.lists(st.integers(min_value=0, max_value=400), max_size=8), st.integers(8, 64))
def test_data_payloads_are_the_data_lines_however_the_reads_split(raw, cuts, limit):
    """`Lines.data` (one regular-expression scan per read) finds what splitting every read into lines
    and keeping the `data:` ones finds, failures included, wherever the reads are cut."""
    bounds = [0, *sorted(c % (len(raw) + 1) for c in cuts), len(raw)]
    reads = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    fast, slow = Lines(limit), Lines(limit)
    for read in reads:
        try:
            got = fast.data(read)
        except UpstreamTransient:
            got = None
        try:
            want = [line[5:].strip() for line in slow.feed(read) if line[:5] == b"data:"]
        except UpstreamTransient:
            want = None
        assert got == want
        assert (fast.failure is None) == (slow.failure is None)
        if got is None:
            return
    assert fast.rest() == slow.rest()


_text = st.text(alphabet='ab{}"', max_size=4)
_delta = st.fixed_dictionaries(
    {},
    optional={
        "role": st.just("assistant"),
        "content": _text | st.none(),
        "refusal": _text,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"index": st.integers(0, 1)},
                optional={"id": st.sampled_from(["c1", "c2"]), "function": st.fixed_dictionaries(
                    {}, optional={"name": _text, "arguments": _text})},
            ),
            max_size=2,
        ),
    },
)  # fmt: skip
_choice = st.fixed_dictionaries(
    {"index": st.integers(0, 1), "delta": _delta},
    optional={"finish_reason": st.sampled_from([None, "stop", "tool_calls"])},
)
_stream_chunk = st.fixed_dictionaries(
    {"id": st.just("c1"), "choices": st.lists(_choice, max_size=2)},
    optional={"usage": st.just({"total_tokens": 3})},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_stream_chunk, min_size=1, max_size=12))
def test_the_assembled_answer_is_every_delta_joined_in_order(chunks):
    """What the assembler builds, against the plain reading of the chunks: per choice, the content,
    refusal and each tool call's name and arguments joined in arrival order, the last finish_reason."""
    assembler = ChunkAssembler()
    assembler.add(chunks[0])
    assembler.add_all(chunks[1:])
    content: dict[int, str] = {}
    refusal: dict[int, str] = {}
    tools: dict[int, dict[int, list[str]]] = {}
    finish: dict[int, str | None] = {}
    size = 0
    for piece in chunks:
        for choice in piece["choices"]:
            i, delta = choice["index"], choice["delta"]
            content[i] = content.get(i, "") + (delta.get("content") or "")
            refusal[i] = refusal.get(i, "") + delta.get("refusal", "")
            size += len(delta.get("content") or "") + len(delta.get("refusal", ""))
            for call in delta.get("tool_calls", []):
                slot = tools.setdefault(i, {}).setdefault(call["index"], ["", ""])
                slot[0] += call.get("function", {}).get("name", "")
                slot[1] += call.get("function", {}).get("arguments", "")
                size += len(call.get("function", {}).get("name", ""))
                size += len(call.get("function", {}).get("arguments", ""))
            finish[i] = choice.get("finish_reason") or finish.get(i)
    got = {c["index"]: c for c in assembler.completion()["choices"]}
    assert sorted(got) == sorted(content)
    for i, choice in got.items():
        message = choice["message"]
        assert (message["content"] or "") == content[i]
        assert message.get("refusal", "") == refusal[i]
        calls = [[c["function"]["name"], c["function"]["arguments"]] for c in message.get("tool_calls", [])]
        assert calls == [slot for _, slot in sorted(tools.get(i, {}).items())]
        assert choice["finish_reason"] == (finish[i] or "stop")
    assert assembler.size == size
    assert assembler.finished == (bool(finish) and all(finish.values()))
    assert ("usage" in assembler.completion()) == any("usage" in c for c in chunks)


# --- passthrough: the commit comes at the first text, the guard is built after the request left ---------


def _relay_factory(calls: list[str]) -> Any:
    def make() -> Relay:
        calls.append("relay built")
        return Relay(StreamGuard([], RequestContext()))

    return make


async def _batches(
    batches: list[list[dict[str, Any]]], calls: list[str]
) -> AsyncIterator[list[dict[str, Any]]]:
    for batch in batches:
        calls.append("read")  # the first read is where the request goes out
        yield batch


def test_one_read_with_the_whole_answer_still_commits_at_the_first_text():
    whole = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"})]
    whole.append(chunk({}, "stop"))
    calls: list[str] = []
    relay, pending, rest, ended = asyncio.run(_first_content(_batches([whole], calls), _relay_factory(calls)))
    assert [c["choices"][0]["delta"] for c in pending] == [{"role": "assistant"}, {"content": "Hel"}]
    assert rest == whole[2:] and not ended  # relayed after the commit, through the same guard
    assert relay.text == "Hel"
    assert calls == ["read", "relay built"]


def test_the_guard_is_built_only_once_the_first_chunks_are_back():
    calls: list[str] = []
    batches = [[chunk({"role": "assistant", "content": ""})], [chunk({"content": "Hi"})], [chunk({}, "stop")]]
    _, pending, rest, ended = asyncio.run(_first_content(_batches(batches, calls), _relay_factory(calls)))
    assert calls == ["read", "relay built", "read"]  # never before the first read: not on the way out
    assert [c["choices"][0]["delta"] for c in pending] == [{"role": "assistant"}, {"content": "Hi"}]
    assert rest == [] and not ended


def test_a_stream_that_ends_before_any_byte_is_a_cut():
    calls: list[str] = []
    with pytest.raises(UpstreamTransient, match="ended before the answer was complete"):
        asyncio.run(_first_content(_batches([], calls), _relay_factory(calls)))
    assert calls == []


# --- passthrough after the commit: one guard scan and one event per read -------------------------------


class _CountingGuard(StreamGuard):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fed: list[str] = []

    def feed(self, delta: str) -> GuardStep:
        self.fed.append(delta)
        return super().feed(delta)


def test_the_text_of_one_read_is_scanned_once_and_sent_as_one_chunk_in_order():
    guard = _CountingGuard([], RequestContext())
    relay = Relay(guard)
    relay.relay(chunk({"role": "assistant", "content": ""}))
    read = [chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({"refusal": "no"})]
    read += [chunk({"content": " there"}), chunk({"content": "!"}), chunk({}, "stop")]
    out = relay.relay_all(read)
    assert [c["choices"][0]["delta"] for c in out] == [
        {"content": "Hello"},
        {"refusal": "no"},
        {"content": " there!"},
    ]
    assert guard.fed == ["Hello", " there!"]  # not one scan per chunk
    assert relay.text == "Hello there!" and relay.finish_reason == "stop"


def test_a_violation_in_a_read_releases_none_of_its_text():
    relay = Relay(StreamGuard([RegexValidator(["secret"], [], "reject")], RequestContext()))
    relay.relay(chunk({"role": "assistant", "content": ""}))
    out = relay.relay_all(
        [chunk({"content": "the sec"}), chunk({"content": "ret is out"}), chunk({}, "stop")]
    )
    assert out == [] and relay.stopped and relay.text == ""
