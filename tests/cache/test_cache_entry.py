"""The stored answer format and the storage envelope."""

from __future__ import annotations

import orjson
import pytest

from proxy.cache import CachedAnswer, decode_entry, encode_entry
from proxy.cache.envelope import Sealer

SEALER = Sealer(b"s" * 32)

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": '{"a": 1}'}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def encode(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "response": COMPLETION,
        "deployment": "mock/schema",
        "outcome": "repaired",
        "repairs": ["fence", "coerce:/age"],
        "created": 1700000000.5,
    }
    return encode_entry(**{**fields, **overrides})  # type: ignore[arg-type]


def test_round_trip_keeps_everything() -> None:
    data = encode()
    assert orjson.loads(data)["v"] == 1
    assert decode_entry(data) == CachedAnswer(
        COMPLETION, "mock/schema", "repaired", ("fence", "coerce:/age"), 1700000000.5
    )


def test_embeddings_responses_are_storable() -> None:
    response = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]}
    answer = decode_entry(encode(response=response, outcome="pass", repairs=[]))
    assert answer is not None and answer.response == response


@pytest.mark.parametrize("outcome", ["rejected", "streaming", "error", ""])
def test_outcomes_that_must_never_be_cached_are_refused(outcome: str) -> None:
    with pytest.raises(ValueError):
        encode(outcome=outcome)
    forged = orjson.loads(encode())
    forged["outcome"] = outcome
    assert decode_entry(orjson.dumps(forged)) is None


VALID: dict[str, object] = {"v": 1, "response": {"choices": []}, "deployment": "d", "outcome": "pass"}
VALID.update(repairs=[], created=1)


def forged(**changes: object) -> bytes:
    document = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in document.items() if v is not ...})


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"not json",
        b"[]",
        forged(v=2),
        forged(response="x"),
        forged(response={}),
        forged(deployment=3),
        forged(repairs=[1]),
        forged(repairs="fence"),
        forged(created=True),
        forged(created=...),
        b"\x80\x04\x95",  # the start of a pickle
    ],
)
def test_malformed_entries_decode_to_none(data: bytes | None) -> None:
    assert decode_entry(data) is None
    assert decode_entry(forged()) is not None  # the forgeries differ from a valid entry only as named


def test_envelope_round_trip_and_every_single_byte_flip_is_detected() -> None:
    payload = b'{"v":1,"hello":"world"}'
    sealed = SEALER.seal("k", payload, 1234.5)
    assert SEALER.unseal("k", sealed) == (payload, 1234.5)
    for index in range(len(sealed)):
        garbled = bytearray(sealed)
        garbled[index] ^= 0x41
        assert SEALER.unseal("k", bytes(garbled)) is None, index


@pytest.mark.parametrize("cut", [0, 1, 3, 14, 15, 20, 34, 42, 43, 50])
def test_truncated_envelopes_are_rejected(cut: int) -> None:
    sealed = SEALER.seal("k", b'{"v":1,"hello":"world"}', 1.0)
    assert SEALER.unseal("k", sealed[:cut]) is None
