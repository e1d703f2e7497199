"""The content parts of a chat message, allow-listed per role as the OpenAI Chat Completions schema defines.

A part type the schema does not define is the request's own fault: it is refused here with a 400 naming
the part, before any provider sees it. Left to the provider layer it became a transient-looking failure
(litellm raises `APIConnectionError`), which was retried and cooled the deployment down for every tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest

__all__ = ["PART_TYPES", "clean_part"]

# role -> the part types its `content` array may hold
PART_TYPES: Mapping[str, frozenset[str]] = {
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "tool": frozenset({"text"}),
    "function": frozenset({"text"}),
}

# part type -> the fields of its payload object that are forwarded (all strings)
_PAYLOAD_FIELDS: Mapping[str, tuple[str, ...]] = {
    "image_url": ("url", "detail"),
    "input_audio": ("data", "format"),
    "file": ("file_data", "file_id", "filename"),
}
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "image_url": ("url",),
    "input_audio": ("data", "format"),
    "file": (),
}


def clean_part(part: Any, role: str, where: str) -> dict[str, Any]:
    """The part with only its type's fields; 400 naming `where` for an unknown type or a bad shape."""
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str):
        raise InvalidRequest(f"`{where}` must be a content part object with a `type`.", param=where)
    allowed = PART_TYPES.get(role, frozenset())
    if kind not in allowed:
        raise InvalidRequest(
            f"`{where}.type` must be one of {', '.join(sorted(allowed))} for a `{role}` message.",
            param=f"{where}.type",
        )
    value = part.get(kind)
    if kind in ("text", "refusal"):
        if not isinstance(value, str):
            raise InvalidRequest(f"`{where}.{kind}` must be a string.", param=f"{where}.{kind}")
        return {"type": kind, kind: value}
    return {"type": kind, kind: _payload(kind, value, f"{where}.{kind}")}


def _payload(kind: str, value: Any, where: str) -> dict[str, str]:
    fields = _PAYLOAD_FIELDS[kind]
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{where}` must be an object.", param=where)
    clean = {k: value[k] for k in fields if k in value}
    for name, v in clean.items():
        if not isinstance(v, str):
            raise InvalidRequest(f"`{where}.{name}` must be a string.", param=f"{where}.{name}")
    for name in _REQUIRED[kind]:
        if name not in clean:
            raise InvalidRequest(f"`{where}.{name}` is required.", param=f"{where}.{name}")
    if not clean:  # a file part names its file one way or another
        raise InvalidRequest(f"`{where}` must hold one of {', '.join(fields)}.", param=where)
    return clean
