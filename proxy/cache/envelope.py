"""The storage envelope: a format tag, a CRC-32 and the store time around every stored value.

Layout: ``b"GP1" | crc32(stored_at + payload) (4 bytes, big endian) | stored_at (float64, big endian) |
payload``. A value that is short, has another tag, or fails the checksum (a torn write, a garbled file,
a row written by another program) is rejected, so the backend can evict it and report a miss.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["MAGIC", "seal", "unseal"]

MAGIC = b"GP1"
_HEADER = struct.Struct(">3sId")
_STAMP = struct.Struct(">d")


def seal(payload: bytes, stored_at: float) -> bytes:
    """Wrap `payload` with the format tag, checksum and store time."""
    stamp = _STAMP.pack(stored_at)
    crc = zlib.crc32(payload, zlib.crc32(stamp))
    return _HEADER.pack(MAGIC, crc, stored_at) + payload


def unseal(data: bytes) -> tuple[bytes, float] | None:
    """Return (payload, stored_at), or None when `data` is not an intact envelope."""
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        return None
    _, crc, stored_at = _HEADER.unpack_from(data)
    view = memoryview(data)
    if zlib.crc32(view[_HEADER.size :], zlib.crc32(view[7 : _HEADER.size])) != crc:
        return None
    return data[_HEADER.size :], stored_at
