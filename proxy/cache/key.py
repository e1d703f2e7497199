"""The cache key: SHA-256 of the canonical JSON of everything that can change the answer.

The key covers, as one JSON document (``orjson`` with sorted keys, compact, UTF-8 unescaped):

- ``kind``: the route (``chat.completions`` or ``embeddings``), so the two never share entries.
- ``alias`` and ``deployments``: the model alias and its ordered deployment chain (editing the chain
  invalidates the alias's entries).
- ``policy``: the policy's name and content hash (editing a policy invalidates its entries).
- ``scope``: the SHA-256 of the caller's API key when ``cache.scope`` is ``key``; null for ``global``.
  It is derived by the server from the authenticated key, never from anything the client sends.
- ``request``: the request body minus the fields below that cannot change the output.

Request fields that are part of the key (output-relevant), chat: ``messages``, ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``functions``, ``function_call`` (legacy tools),
``response_format``, ``temperature``, ``top_p``, ``max_tokens``, ``max_completion_tokens``, ``seed``,
``stop``, ``n``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``logprobs``,
``top_logprobs``, ``reasoning_effort``, ``verbosity``, ``modalities``, ``audio``, ``prediction``,
``web_search_options``; embeddings: ``input``, ``dimensions``, ``encoding_format``. Any other field
that reaches this function is also part of the key: an unknown field costs a miss, never a wrong hit.

Request fields left out (they do not change the model's output): ``model`` (the ``alias`` stands for
it), ``user``, ``safety_identifier``, ``prompt_cache_key``, ``prompt_cache_retention`` (identity and
provider-side caching hints), ``stream``, ``stream_options`` (a hit is replayed in either form),
``metadata``, ``store`` (provider-side bookkeeping), ``service_tier`` (latency and price tier of the
same model, not a different answer).

Normalisation, so that equivalent requests share a key: object key order is irrelevant; a float
with an integral value equals the integer (``1.0`` == ``1``, at any depth, booleans untouched);
a top-level field set to null is the same as an absent one; ``n: 1`` (the default) is the same as no
``n``; ``stop: "x"`` is the same as ``stop: ["x"]``. Nothing else is rewritten: message text,
whitespace and content-part shapes are compared exactly.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["EXCLUDED_FIELDS", "KEY_VERSION", "cache_key", "canonical_json"]

KEY_VERSION = 1
EXCLUDED_FIELDS = frozenset(
    {
        "model",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "stream",
        "stream_options",
        "metadata",
        "store",
        "service_tier",
    }
)
_INT64 = 2**63
_PLAIN_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_FOLD = bytes.maketrans(b"123456789eE", b"000000000..")
_MEMO_MAX_BYTES = 16 * 1024  # bounds the memo at 128 such documents


def _normalise(value: Any) -> Any:
    """Integral floats to ints, non-finite floats and out-of-range ints to tagged strings, recursively."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:  # the common case first: ABC checks below cost more than the work
        return {str(k): _normalise(v) for k, v in value.items()}
    if kind is list:
        return [_normalise(v) for v in value]
    if kind is float:
        if not math.isfinite(value):
            return f"$float:{value!r}"
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if kind is int and not -_INT64 <= value < _INT64:
        return f"$int:{value}"
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def _request_part(request: Mapping[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {}
    for name, value in request.items():
        if name in EXCLUDED_FIELDS or value is None:
            continue
        if name == "n" and value == 1 and type(value) is not bool:
            continue
        if name == "stop" and isinstance(value, str):
            value = [value]
        kind = type(value)
        blob = _plain_json(value, memo=name != "messages") if kind is dict or kind is list else None
        part[name] = _normalise(value) if blob is None else orjson.Fragment(blob)
    return part


def _plain_json(value: Any, *, memo: bool = False) -> bytes | None:
    """`value`'s canonical JSON if normalising cannot change it, else None (then normalise it).

    Serialising costs far less than walking the document in Python, and the usual container (the
    messages, a response schema, the tools) holds only strings, booleans and small integers, which
    normalising leaves alone. Serialising refuses integers past 2**53, non-string keys, subclasses of
    dict, list, str and int, dataclasses and dates; `_is_plain` reads the bytes for the rest. `memo`
    for the fields that repeat from request to request (a schema, the tools; not the messages).
    """
    try:
        blob = orjson.dumps(value, option=_PLAIN_OPTIONS)
    except orjson.JSONEncodeError:
        return None
    plain = _is_plain_memo(blob) if memo and len(blob) <= _MEMO_MAX_BYTES else _is_plain(blob)
    return blob if plain else None


def _is_plain(blob: bytes) -> bool:
    """Whether the JSON `blob` has no float (a digit then ``.`` or ``e``) and no null outside strings.

    A NaN or an infinity shows as ``null``; None does too and takes the slow way, needlessly but safely.
    """
    folded = blob.translate(_FOLD)  # digits to 0, `.`, `e` and `E` to `.`
    if b"0." not in folded and b"null" not in folded:
        return True  # not even inside a string: the cheap answer for most documents
    if b"\\" in folded:  # drop escapes, `\\` pairs first so that the quote in `\\"` still ends a string
        folded = folded.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(folded.split(b'"')[::2])  # each quote left opens or closes a string
    return b"0." not in outside and b"null" not in outside


_is_plain_memo = functools.lru_cache(maxsize=128)(_is_plain)


def canonical_json(document: Any) -> bytes:
    """Return the canonical JSON bytes of `document` (sorted keys, compact, numbers normalised)."""
    blob = _plain_json(document)
    return orjson.dumps(_normalise(document), option=orjson.OPT_SORT_KEYS) if blob is None else blob


def cache_key(
    *,
    request: Mapping[str, Any],
    alias: str,
    deployments: Sequence[str],
    policy_name: str,
    policy_hash: str,
    scope_key_hash: str | None,
    kind: str = "chat.completions",
) -> str:
    """Return the hex SHA-256 cache key for a request (see the module docstring for what it covers)."""
    document = {
        "v": KEY_VERSION,
        "kind": kind,
        "alias": alias,
        "deployments": list(deployments),
        "policy": [policy_name, policy_hash],
        "scope": scope_key_hash,
        "request": _request_part(request),
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()
