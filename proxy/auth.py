"""Client keys: SHA-256 only in memory, constant-time comparison, aliases by glob."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import AuthenticationFailed, PermissionDenied
from .settings import ApiKey

__all__ = ["Caller", "KeyStore"]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's config, or the anonymous local-development caller."""

    name: str
    key_hash: str | None
    models: tuple[str, ...] = ("*",)
    allow_policy_override: bool = True
    admin: bool = True
    rpm: int | None = None
    tpm: int | None = None

    def may_use(self, alias: str) -> bool:
        return _matcher(self.models)(alias)

    def check_alias(self, alias: str) -> None:
        if not self.may_use(alias):
            raise PermissionDenied(f"This API key may not use the model '{alias}'.", param="model")

    def check_override(self) -> None:
        if not self.allow_policy_override:
            raise PermissionDenied("This API key may not choose the policy (x-guardproxy-policy).")


@functools.lru_cache(maxsize=1024)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """One compiled test for a key's alias globs (fnmatchcase's rules), made once per distinct list."""
    if "*" in patterns:
        return lambda alias: True
    regex = re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")
    return lambda alias: regex.match(alias) is not None


ANONYMOUS = Caller(name="anonymous", key_hash=None)


class KeyStore:
    """Authenticates `Authorization: Bearer KEY` against the configured key hashes."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = tuple(keys)
        self._digests = [bytes.fromhex(k.key_sha256) for k in self._keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller for this header; AuthenticationFailed (generic message) otherwise."""
        if not self._keys:
            return ANONYMOUS
        if not authorization or len(authorization) > 4096:
            raise AuthenticationFailed()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed()
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found = None
        for key, expected in zip(self._keys, self._digests, strict=True):
            if hmac.compare_digest(digest, expected):  # every key compared: no early exit
                found = key
        if found is None:
            raise AuthenticationFailed()
        return Caller(
            found.name,
            found.key_sha256,
            found.models,
            found.allow_policy_override,
            found.admin,
            found.rpm,
            found.tpm,
        )
