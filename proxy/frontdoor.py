"""Checks on a request's headers alone, made before any routing, body reading or in-flight slot.

A browser can be made to reach a keyless proxy on loopback: a web page posting a form (sent as
`text/plain` or a form type, so no CORS preflight stops it), or a page whose DNS name is rebound to
127.0.0.1 after it loaded (same origin for the browser, but its `Host` header still names the page's
domain). Requiring `application/json` on the JSON routes and a served `Host` name closes both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .errors import MisdirectedRequest, UnsupportedMediaType
from .settings import ServerSettings

__all__ = ["HostCheck", "LOOPBACK_NAMES", "check_json_body", "is_loopback"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_SEEN = 64  # `Host` values remembered as served (a client sends the same one on every request)


class HostCheck:
    """The `Host` names `server.allowed_hosts` serves (any port); 421 for the others."""

    def __init__(self, server: ServerSettings) -> None:
        names: Iterable[str] = server.allowed_hosts or (
            LOOPBACK_NAMES if is_loopback(server.host) else ("*",)
        )
        names = [n.strip().lower() for n in names]
        self.any = "*" in names
        self.names = frozenset(names)
        self._served: set[bytes] = set()  # raw values already parsed and found served

    def check(self, host: bytes | None) -> None:
        if self.any or host in self._served:
            return
        if host is not None and _name(host.decode("latin-1")) in self.names:
            if len(self._served) < _SEEN:
                self._served.add(host)
            return
        raise MisdirectedRequest(
            "This Host is not served by guardproxy; add it to server.allowed_hosts to allow it."
        )


def _name(host: str) -> str | None:
    """The name of a `Host` value without its port ('[::1]' keeps its brackets); None when malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]") + 1
        name, rest = host[:end], host[end:]
    else:
        name, sep, port = host.partition(":")
        rest = sep + port
    if not name or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
        return None  # anything after the name but a port (`evil/?`, `a@b`) is not a Host we serve
    return name


def check_json_body(content_type: bytes | None) -> None:
    """415 unless the body is declared `application/json` (parameters such as charset allowed)."""
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    if media != b"application/json":
        raise UnsupportedMediaType("Send the request body as JSON with `Content-Type: application/json`.")
