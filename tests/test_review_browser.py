"""Headless Chromium follows the live dashboard's link to /ui/review on a live server: the queue shows
the recorded failures, and an admin's verdict in the page becomes stored feedback (and evicts the
cached answer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.test_dashboard_browser import ARGS, CHROMIUM
from tests.test_feedback import ADMIN, ALICE, KEYS, MODELS, MONITOR, RF, chat


@pytest.mark.browser
def test_review_queue_in_chromium(
    make_config: Callable[..., Path], start_proxy: Callable[..., Any], http: httpx.Client, tmp_path: Path
) -> None:
    server = start_proxy(make_config(MODELS, auth=KEYS, policies={"watch": MONITOR}))
    assert chat(http, server, ALICE, "echo", "fine").status_code == 200  # pass: not recorded
    assert (
        chat(http, server, ALICE, "structured", "a person", response_format=RF).status_code == 200
    )  # repaired
    rejected = chat(http, server, ALICE, "hopeless", "nobody", response_format=RF)
    flagged = chat(http, server, ALICE, "advice", "Can I retire at 40? I'm bob@example.com")
    assert rejected.status_code == 422 and flagged.headers["x-guardproxy-outcome"] == "flagged"
    flagged_id, rejected_id = flagged.headers["x-request-id"], rejected.headers["x-request-id"]
    errors: list[str] = []
    shot = tmp_path / "review.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{server.url}/ui?key={ADMIN}")
            page.get_by_role("link", name="review queue").click()  # the dashboard links to it, key kept
            page.wait_for_url(f"{server.url}/ui/review?key={ADMIN}")
            page.wait_for_function("() => Number(document.body.dataset.loads || 0) >= 1", timeout=20_000)
            items = page.locator("article.item")
            assert items.count() == 2  # flagged and rejected; the repaired and passed answers are not queued
            assert [items.nth(i).get_attribute("data-id") for i in range(2)] == [flagged_id, rejected_id]
            card = page.locator(f'article[data-id="{flagged_id}"]')
            assert card.locator(".raw").inner_text() == "Returns are guaranteed!"
            assert card.locator(".final").inner_text() == "Returns are guaranteed!"
            request_text = card.locator(".request").inner_text()
            assert "Can I retire at 40?" in request_text and "bob@example.com" not in request_text
            assert "regex" in card.locator(".violations").inner_text()
            other = page.locator(f'article[data-id="{rejected_id}"]')
            assert other.locator(".final").inner_text() == "(rejected: 422)"
            assert other.locator(".raw").inner_text() == "Sorry, I cannot answer in JSON."

            card.locator("textarea.correction").fill("Nobody can promise returns.")
            card.locator("button.bad").click()
            page.wait_for_function("() => Number(document.body.dataset.loads || 0) >= 2", timeout=20_000)
            card = page.locator(f'article[data-id="{flagged_id}"]')
            assert card.locator('[data-verdict="bad"]').count() == 1
            rate = page.locator('#rates-alias tr[data-name="advice"] td[data-col="bad-rate"]').inner_text()
            assert rate == "100.0%"
            page.select_option("#filter-policy", "strict-json")
            page.wait_for_function("() => Number(document.body.dataset.loads || 0) >= 3", timeout=20_000)
            assert [a.get_attribute("data-id") for a in page.locator("article.item").all()] == [rejected_id]
            page.select_option("#filter-policy", "")
            page.wait_for_function("() => Number(document.body.dataset.loads || 0) >= 4", timeout=20_000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert shot.stat().st_size > 20_000
    queue = http.get(f"{server.url}/ui/api/review", headers={"authorization": f"Bearer {ADMIN}"}).json()
    (item,) = [i for i in queue["items"] if i["id"] == flagged_id]
    assert item["feedback"][0]["verdict"] == "bad" and item["feedback"][0]["key_name"] == "ops"
    assert item["feedback"][0]["correction"] == "Nobody can promise returns." and item["evicted"] is True
    again = chat(http, server, ALICE, "advice", "Can I retire at 40? I'm bob@example.com")
    assert again.headers["x-guardproxy-cache"] == "miss"  # the rated answer left the cache
