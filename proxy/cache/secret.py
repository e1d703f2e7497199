"""Files the disk backend keeps private: the generated HMAC secret and the SQLite database (mode 0600).

When `cache.secret` is unset, the disk backend signs entries with 32 random bytes generated once into
``<cache folder>/cache.db-hmac-key`` (hex, mode 0600) and shared by every worker on the machine. The file
is written under a temporary name and published with `os.link`, which fails if the name exists, so
concurrent first starts agree on one secret and nobody ever reads a half-written file. The name starts
with ``cache.db`` because diskcache's `check(fix=True)` (run by `guardproxy cache prune`) deletes every
other file it does not know in the folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import uuid
from pathlib import Path

__all__ = ["SECRET_FILE", "disk_secret", "private_file"]

SECRET_FILE = "cache.db-hmac-key"
_SECRET_BYTES = 32
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def private_file(path: Path, *, create: bool = True) -> None:
    """Create `path` empty with mode 0600 if missing (and `create`), or tighten it to 0600 if we own it.

    An existing file is changed by path, never opened: closing any descriptor of a SQLite database
    drops every POSIX lock this process holds on it, under the feet of its open connections.
    """
    try:
        if create:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600))
            return
        info = os.lstat(path)
    except FileExistsError:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.chmod(path, 0o600)


def disk_secret(folder: Path) -> bytes:
    """Return the folder's HMAC secret, generating it on first use; ValueError if the file is unusable."""
    path = folder / SECRET_FILE
    if not path.exists():
        _publish(path, secrets.token_bytes(_SECRET_BYTES).hex().encode() + b"\n")
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        _tighten(fd)
        text = os.read(fd, 4 * _SECRET_BYTES).strip()
    finally:
        os.close(fd)
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        secret = b""
    if len(secret) != _SECRET_BYTES:
        raise ValueError(f"{path} is not a {_SECRET_BYTES}-byte hex secret (delete it to generate a new one)")
    return secret


def _publish(path: Path, content: bytes) -> None:
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process published first: use theirs
            os.link(temp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def _tighten(fd: int) -> None:
    info = os.fstat(fd)
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.fchmod(fd, 0o600)
