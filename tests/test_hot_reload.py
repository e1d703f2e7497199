"""Hot reload of policies and config while requests flow: good files swap in, bad ones are refused."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import yaml

from proxy.reload import Reloader
from proxy.services import load_runtime
from proxy.settings import ServerSettings
from tests.helpers import wait_until


def reload_failures(proxy) -> float:
    text = httpx.get(proxy.url + "/metrics", timeout=10).text
    match = re.search(r"^guardproxy_config_reload_failures_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_reload_good_then_bad_policy_while_requests_flow(make_config, start_proxy, tmp_path):
    config = make_config(
        {"bot": {"policy": "house", "deployments": [{"model": "mock/echo"}]}},
        policies={
            "house": {"validators": [{"type": "phrases", "deny": ["forbidden fruit"]}], "on_fail": ["reject"]}
        },
    )
    proxy = start_proxy(config)
    body = {"model": "bot", "messages": [{"role": "user", "content": "I like forbidden fruit"}]}
    statuses: list[int] = []
    stop = threading.Event()

    def traffic():
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            while not stop.is_set():
                statuses.append(
                    client.post(
                        "/v1/chat/completions", json=body, headers={"cache-control": "no-store"}
                    ).status_code
                )

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_until(lambda: len(statuses) >= 3, 15)
        assert set(statuses) == {422}
        policy_file = tmp_path / "policies" / "house.yaml"
        policy_file.write_text(
            yaml.safe_dump(
                {
                    "name": "house",
                    "validators": [{"type": "phrases", "deny": ["rotten apple"]}],
                    "on_fail": ["reject"],
                }
            )
        )
        wait_until(lambda: statuses[-1] == 200, 15)  # the edited policy was picked up
        seen = len(statuses)
        policy_file.write_text("name: house\nvalidators:\n  - type: regx\n")  # invalid: refused
        wait_until(lambda: reload_failures(proxy) >= 1, 15)
        refused_at = len(statuses)
        wait_until(lambda: len(statuses) > refused_at + 3, 15)
    finally:
        stop.set()
        worker.join()
    assert set(statuses) <= {200, 422}, "a request failed because of a reload"
    after_bad = statuses[seen:]
    assert after_bad and set(after_bad) == {200}, "the invalid policy must not replace the serving one"


def test_an_edit_applies_at_the_second_poll_that_sees_it_and_the_interval_follows_the_config(make_config):
    """The stable-across-two-polls rule, poll by poll (no clock): the first poll that sees an edit only
    notes it, the next one (same file) applies it, and the applied `server.reload_interval` is the
    watcher's interval from then on."""
    config = make_config({"bot": {"deployments": [{"model": "mock/echo"}]}}, server={"reload_interval": 0.25})
    serving = [load_runtime(config)]
    reloader = Reloader(config, lambda: serving[-1], serving.append)
    assert reloader.interval == 0.25
    assert ServerSettings().reload_interval == 0.5  # the documented default

    edited = yaml.safe_load(config.read_text())
    edited["server"]["reload_interval"] = 0.75
    config.write_text(yaml.safe_dump(edited, sort_keys=False))
    asyncio.run(reloader.poll())
    assert len(serving) == 1, "applied at the first poll that saw the edit: it may still be being written"
    asyncio.run(reloader.poll())
    assert len(serving) == 2 and reloader.reloads == 1
    assert reloader.interval == 0.75
    assert Reloader(config, lambda: serving[-1], serving.append, interval=0.1).interval == 0.1  # an override
