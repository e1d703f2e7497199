"""JSON Schema `format` checks written here, so results never depend on optional packages."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable

from jsonschema import FormatChecker

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    re.ASCII,
)
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*", re.ASCII)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:", re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)


def is_date(value: str) -> bool:
    """RFC 3339 full-date."""
    if not _DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_time(value: str) -> bool:
    """RFC 3339 full-time (offset required; leap second 60 allowed)."""
    m = _TIME.fullmatch(value)
    if not m:
        return False
    hour, minute, second = int(m[1]), int(m[2]), int(m[3])
    if hour > 23 or minute > 59 or second > 60:
        return False
    offset = m[5]
    return offset in ("Z", "z") or (int(offset[1:3]) <= 23 and int(offset[4:6]) <= 59)


def is_date_time(value: str) -> bool:
    """RFC 3339 date-time, with `T` (or `t`) between date and time."""
    if len(value) < 20 or value[10] not in "Tt":
        return False
    return is_date(value[:10]) and is_time(value[11:])


def is_email(value: str) -> bool:
    """An addr-spec with a dot-atom local part and a hostname domain."""
    return len(value) <= 254 and _EMAIL.fullmatch(value) is not None and len(value.split("@")[0]) <= 64


def is_uri(value: str) -> bool:
    """An absolute RFC 3986 URI: a scheme, then only URI characters."""
    scheme = _SCHEME.match(value)
    return scheme is not None and _URI_CHARS.fullmatch(value, scheme.end()) is not None


def is_uri_reference(value: str) -> bool:
    """An RFC 3986 URI reference (absolute or relative)."""
    return _URI_CHARS.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    """The canonical 8-4-4-4-12 hex form."""
    return _UUID.fullmatch(value) is not None


def _ip(kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            kind(value)
        except ValueError:
            return False
        return True

    return check


CHECKS: dict[str, Callable[[str], bool]] = {
    "date": is_date,
    "time": is_time,
    "date-time": is_date_time,
    "email": is_email,
    "uri": is_uri,
    "uri-reference": is_uri_reference,
    "uuid": is_uuid,
    "ipv4": _ip(ipaddress.IPv4Address),
    "ipv6": _ip(ipaddress.IPv6Address),
}


def format_checker() -> FormatChecker:
    """A FormatChecker for the formats above; other strings are always accepted (as the spec allows)."""
    checker = FormatChecker(formats=())
    for name, check in CHECKS.items():
        checker.checks(name)(_only_strings(check))
    return checker


def _only_strings(check: Callable[[str], bool]) -> Callable[[object], bool]:
    def wrapped(instance: object) -> bool:
        return not isinstance(instance, str) or check(instance)

    return wrapped
