"""Headless Chromium (Debian's package, via Playwright) opens /ui on a live server: numbers match /metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.test_dashboard import ADMIN_KEY, KEYS, MODELS, scrape, send_traffic, total

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOTAL_SHOWN = (
    "n => document.querySelector('#kpi-requests [data-value]').textContent.replace(/,/g, '') === String(n)"
)
Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def number(page: Page, selector: str) -> float:
    """The number shown by the element (thousands separators and a trailing % removed)."""
    text = page.locator(selector).first.inner_text().strip()
    assert re.fullmatch(r"[0-9,]+(\.[0-9]+)?%?", text), (selector, text)
    return float(text.replace(",", "").rstrip("%"))


def check_numbers(page: Page, metrics: Metrics) -> None:
    """Every number the test can tie to a /metrics series equals it."""
    requests = total(metrics, "guardproxy_requests_total")
    assert number(page, "#kpi-requests [data-value]") == requests == 36
    for outcome in ("pass", "repaired", "rejected"):
        assert number(page, f"#outcome-total-{outcome}") == total(
            metrics, "guardproxy_requests_total", outcome=outcome
        )
    assert total(metrics, "guardproxy_requests_total", outcome="repaired") >= 9
    assert (
        number(page, "#kpi-rejected [data-value]")
        == total(metrics, "guardproxy_requests_total", outcome="rejected")
        == 3
    )
    hits = total(metrics, "guardproxy_cache_total", result="hit")
    misses = total(metrics, "guardproxy_cache_total", result="miss")
    assert hits >= 4
    assert number(page, "#cache-hit") == hits
    assert number(page, "#cache-miss") == misses
    assert number(page, "#kpi-cache [data-value]") == pytest.approx(100 * hits / (hits + misses), abs=0.05)
    assert number(page, "#kpi-tokens [data-value]") == total(metrics, "guardproxy_tokens_total")
    for alias in ("echo", "structured", "hopeless"):
        shown = number(page, f'tr[data-alias="{alias}"] td[data-col="requests"]')
        assert shown == total(metrics, "guardproxy_request_seconds_count", alias=alias)
    for deployment in ("mock/echo", "mock/broken-json", "mock/static"):
        row = page.locator(f'tr[data-deployment="{deployment}"]')
        calls = float(row.locator("td").nth(1).inner_text().replace(",", ""))
        assert calls == total(metrics, "guardproxy_upstream_calls_total", deployment=deployment)
        assert row.locator(".badge").inner_text() == "ok"
    aliases = {dict(labels)["alias"] for name, labels in metrics if name == "guardproxy_requests_total"}
    assert page.locator("#chart-rate svg path").count() == len(aliases) == 4  # "": the unknown model
    assert page.locator("#chart-outcomes svg rect").count() >= 2
    assert page.locator("#status").inner_text() == "live"


@pytest.mark.browser
def test_dashboard_in_chromium(
    make_config: Callable[..., Path],
    start_proxy: Callable[..., Any],
    client_for: Callable[..., openai.OpenAI],
    tmp_path: Path,
) -> None:
    server = start_proxy(make_config(MODELS, auth=KEYS))
    client = client_for(server, key=ADMIN_KEY)
    send_traffic(client, "a")
    errors: list[str] = []
    shot = tmp_path / "dashboard.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{server.url}/ui?key={ADMIN_KEY}")
            page.wait_for_function(TOTAL_SHOWN, arg=12, timeout=20_000)
            for burst, shown in (("b", 24), ("c", 36)):  # two bursts in two 2 s bins: the charts get rates
                page.wait_for_timeout(2100)
                send_traffic(client, burst)
                page.wait_for_function(TOTAL_SHOWN, arg=shown, timeout=20_000)
            page.wait_for_function("() => Number(document.body.dataset.snapshots || 0) >= 3", timeout=10_000)
            check_numbers(page, scrape(server.url))
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
    assert errors == []
