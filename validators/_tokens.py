"""Token counting with tiktoken, only from encodings already on disk: never a download."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["TokenCounter", "offline_token_counter"]

TokenCounter = Callable[[str], int]

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# name -> (sha256 of the .tiktoken file, split pattern, special tokens), as in tiktoken_ext.openai_public
_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}


def _search_dirs() -> list[Path]:
    dirs = [
        os.environ.get("TIKTOKEN_CACHE_DIR"),
        os.environ.get("DATA_GYM_CACHE_DIR"),
        os.path.join(tempfile.gettempdir(), "data-gym-cache"),
    ]
    found = [Path(d) for d in dirs if d]
    # litellm ships cl100k_base next to its code; find it without importing litellm.
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            found.append(Path(loc) / "litellm_core_utils" / "tokenizers")
    return found


def offline_token_counter(encoding: str = "cl100k_base") -> TokenCounter | None:
    """A counter for `encoding` when tiktoken is importable and the encoding file is on disk, else None."""
    if importlib.util.find_spec("tiktoken") is None or encoding not in _ENCODINGS:
        return None
    import tiktoken

    digest, pat_str, special = _ENCODINGS[encoding]
    file_name = hashlib.sha1(f"{_BLOB}{encoding}.tiktoken".encode()).hexdigest()
    for folder in _search_dirs():
        path = folder / file_name
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            continue
        ranks = {
            base64.b64decode(tok): int(rank) for tok, rank in (ln.split() for ln in data.splitlines() if ln)
        }
        enc = tiktoken.Encoding(encoding, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)
        return lambda text: len(enc.encode(text, disallowed_special=()))
    return None
