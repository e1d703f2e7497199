"""guardproxy: an OpenAI-compatible LLM gateway that validates, repairs, retries and caches.

Names are imported on first use so that `proxy.mock` or the CLI start without the whole server.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ProxyError", "Settings", "create_app", "load_settings"]

_WHERE = {
    "ProxyError": ".errors",
    "Settings": ".settings",
    "create_app": ".app",
    "load_settings": ".settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module 'proxy' has no attribute {name!r}")
