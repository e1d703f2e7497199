"""Hot reload of policies and config while requests flow: good files swap in, bad ones are refused."""

from __future__ import annotations

import threading
import time

import httpx
import yaml


def wait_for(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


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
        assert wait_for(lambda: len(statuses) >= 3)
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
        assert wait_for(lambda: statuses[-1] == 200), "the edited policy was not picked up"
        seen = len(statuses)
        policy_file.write_text("name: house\nvalidators:\n  - type: regx\n")  # invalid: refused
        time.sleep(2.5)
        assert wait_for(lambda: len(statuses) > seen + 3)
    finally:
        stop.set()
        worker.join()
    assert set(statuses) <= {200, 422}, "a request failed because of a reload"
    after_bad = statuses[seen:]
    assert after_bad and set(after_bad) == {200}, "the invalid policy must not replace the serving one"
