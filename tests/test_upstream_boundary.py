"""The upstream boundary: every litellm exception is mapped to our tree; litellm stays lazy."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from proxy.errors import UpstreamFailure, UpstreamRateLimited, UpstreamRejected
from proxy.settings import Deployment
from proxy.upstream.litellm_transport import EXCEPTION_MAP, map_litellm_exception


def litellm_exception_classes() -> list[type[BaseException]]:
    import litellm.exceptions as exceptions

    return [
        cls
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith("litellm")
    ]


def test_every_litellm_exception_class_is_mapped():
    unmapped = [
        cls.__name__
        for cls in litellm_exception_classes()
        if not any(base.__name__ in EXCEPTION_MAP for base in cls.__mro__)
    ]
    assert unmapped == [], f"map these litellm exceptions in EXCEPTION_MAP: {unmapped}"


@pytest.mark.parametrize(
    ("status", "expected", "transient"),
    [
        (429, UpstreamRateLimited, True),
        (400, UpstreamRejected, False),
        (500, UpstreamFailure, True),
    ],
)
def test_status_mapping_keeps_retry_after_and_drops_secrets(status, expected, transient):
    import httpx
    import litellm

    dep = Deployment(model="openai/x", api_key="sk-canary-secret-123456")
    response = httpx.Response(
        status,
        headers={"retry-after": "7"},
        request=httpx.Request("POST", "https://api.example.com/v1/chat/completions"),
    )
    cls = {429: litellm.RateLimitError, 400: litellm.BadRequestError, 500: litellm.InternalServerError}[
        status
    ]
    exc = cls(
        message="boom sk-canary-secret-123456 at https://api.example.com/v1",
        model="x",
        llm_provider="openai",
        response=response,
    )
    mapped = map_litellm_exception(exc, dep)
    assert isinstance(mapped, expected)
    assert mapped.transient is transient
    assert "sk-canary" not in mapped.message and "api.example.com" not in mapped.message
    if status == 429:
        assert mapped.retry_after == 7.0


def test_direct_only_config_does_not_import_litellm(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.yaml").write_text("name: default\n")
    (tmp_path / "config.yaml").write_text(
        "models:\n  a:\n    deployments:\n      - model: openai/x\n        api_base: http://127.0.0.1:9/v1\n"
    )
    code = (
        "import sys, asyncio; from pathlib import Path; from proxy.app import create_app\n"
        f"app = create_app(Path({str(tmp_path / 'config.yaml')!r}))\n"
        "async def main():\n"
        "    async with app.starlette.router.lifespan_context(app.starlette):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print('litellm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
