"""Reading an upstream body within `limits.max_upstream_bytes`: decompressed here, counted as it arrives.

Both transports decompress bodies themselves, with zlib's `max_length`, instead of letting the HTTP
client do it: a client that inflates a whole network chunk at once turns 64 KB of gzip bomb into 64 MB
before anyone can count it. Here no call ever produces more than the bytes still allowed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

from ..errors import UpstreamTransient

__all__ = ["ACCEPT_ENCODING", "BodyLimit", "Lines", "MAX_SSE_LINE", "too_large"]

ACCEPT_ENCODING = "gzip, deflate"  # the only encodings we can inflate with a bound
MAX_SSE_LINE = 1 << 20  # default of limits.max_sse_line_bytes: far above any real chunk, far below the body
_PIECE = 64 * 1024  # the most one inflate call may produce
_DATA = re.compile(rb"^data:(.*)$", re.MULTILINE)  # `.*` stops at a newline; a CR is stripped after
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 32 + zlib.MAX_WBITS}


def too_large(
    limit: int, what: str = "answer was larger than limits.max_upstream_bytes"
) -> UpstreamTransient:
    """The failure for an upstream body past a limit: retryable, so the chain falls back."""
    error = UpstreamTransient(f"The provider's {what} ({limit} bytes); it was not read further.")
    error.code = "upstream_too_large"
    return error


class BodyLimit:
    """Inflates (when the body is compressed) and counts one body; fails past `limit` decompressed bytes.

    `limit=None` counts without a cap (a stream, whose output is counted chunk by chunk instead); the
    pieces are still at most `_PIECE` bytes each, so a bomb never inflates in one go.
    """

    def __init__(self, limit: int | None, encoding: str | None = None) -> None:
        self.limit = limit
        self.total = 0
        name = (encoding or "identity").strip().lower()
        if name not in ("", "identity") and name not in _WBITS:
            raise UpstreamTransient(
                f"The provider answered with an unsupported content-encoding: {name[:40]}"
            )
        self.inflating = name in _WBITS
        self._inflate = zlib.decompressobj(_WBITS[name]) if self.inflating else None

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decompressed pieces of `raw`; raises once the body passes the limit."""
        for piece in self._pieces(raw):
            self.total += len(piece)
            if self.limit is not None and self.total > self.limit:
                raise too_large(self.limit)
            yield piece

    def _pieces(self, raw: bytes) -> Iterator[bytes]:
        if self._inflate is None:
            yield raw
            return
        data = raw
        while data:
            try:
                piece = self._inflate.decompress(data, _PIECE)
            except zlib.error:
                raise UpstreamTransient("The provider's compressed body is corrupt.") from None
            if not piece:
                return
            yield piece
            data = self._inflate.unconsumed_tail


class Lines:
    """Splits a byte stream into lines; a line longer than `limit` is a failure, not a growing buffer."""

    def __init__(self, limit: int = MAX_SSE_LINE) -> None:
        self.limit = limit
        self._partial = bytearray()  # appended to in place: a server dripping bytes costs O(n), not O(n^2)
        self.failure: UpstreamTransient | None = None  # a complete line over the limit: no lines after it

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines in `data` (with what was left over before), without their line ending: one
        list per read, not a step per line. The lines before one over the limit still come, and `failure`
        is set; an unfinished line over the limit raises at once."""
        if self.failure is not None:
            return []
        cut = data.find(b"\n")
        if cut < 0:
            self._partial += data
            self._check()
            return []
        lines = data.split(b"\n")
        if self._partial:
            lines[0] = bytes(self._partial) + lines[0]
        self._partial = bytearray(lines.pop())
        self._check()
        if max(map(len, lines)) > self.limit:
            lines = lines[: next(i for i, line in enumerate(lines) if len(line) > self.limit)]
            self.failure = too_large(self.limit, "SSE line was longer than the line limit")
        if b"\r" in data or (lines and lines[0].endswith(b"\r")):  # CRLF endings (rare): strip the CRs
            return [line.rstrip(b"\r") for line in lines]
        return lines

    def data(self, data: bytes) -> list[bytes]:
        """The payloads of the complete `data:` lines in `data` (with what was left over before), without
        the surrounding whitespace: `feed` filtered, found by one regular-expression scan when no line can
        be over the limit (the usual read), line by line otherwise."""
        cut = data.rfind(b"\n")
        if self.failure is not None or cut < 0 or len(self._partial) + cut > self.limit:
            return [line[5:].strip() for line in self.feed(data) if line[:5] == b"data:"]
        start, out = 0, []
        if self._partial:  # the line begun in the last read ends in this one
            start = data.find(b"\n") + 1
            first = bytes(self._partial) + data[: start - 1]
            if first[:5] == b"data:":
                out.append(first[5:].strip())
        out += [payload.strip() for payload in _DATA.findall(data, start, cut)]
        self._partial = bytearray(data[cut + 1 :])
        self._check()
        return out

    def rest(self) -> bytes:
        """What followed the last line ending (a stream that ended without one)."""
        return bytes(self._partial).rstrip(b"\r")

    def _check(self) -> None:
        if len(self._partial) > self.limit:
            raise too_large(self.limit, "SSE line was longer than the line limit")
