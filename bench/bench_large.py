"""Micro-benchmark of judging a large answer (issue 20, item 5): ~100 KB of JSON, a 20-property schema.

Run: .venv/bin/python -m bench.bench_large [--size BYTES] [--repeats N] [--profile]

Times `proxy.judge.judge` with the request's schema (`response_format: json_schema`) under the
shipped `default`, `strict-json` and `pii-redact` policies, and `validators.check` and the compiled
schema check alone, on a fresh request context per call (as the server makes one per request).
Figures are median milliseconds of CPU time of this process (`time.process_time`). `--profile`
prints cProfile's top functions for the default policy.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from proxy.judge import judge
from proxy.policy import load_policy
from validators import Budget, Output, RequestContext, check, default_registry

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 5.0

_ITEM = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sku", "name", "quantity", "unit_price", "tags"],
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4,6}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "quantity": {"type": "integer", "minimum": 1},
        "unit_price": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        "discount": {"type": ["number", "null"]},
    },
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "customer", "items", "total", "currency", "status", "notes", "created"],
    "properties": {
        "id": {"type": "string", "pattern": "^ORD-[0-9]{4}-[0-9]+$"},
        "customer": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "email", "tier"],
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "tier": {"enum": ["free", "pro", "enterprise"]},
            },
        },
        "items": {"type": "array", "items": _ITEM, "minItems": 1},
        "total": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "status": {"type": "string", "enum": ["pending", "shipped", "delivered"]},
        "notes": {"type": "string", "maxLength": 20000},
        "created": {"type": "string", "format": "date-time"},
        "updated": {"type": ["string", "null"], "format": "date-time"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "gift": {"type": "boolean"},
        "coupon": {"type": ["string", "null"]},
        "weight_kg": {"type": "number"},
        "channel": {"const": "web"},
        "shipping": {
            "type": "object",
            "required": ["method", "address"],
            "properties": {
                "method": {"enum": ["post", "courier", "pickup"]},
                "address": {"type": "array", "items": {"type": "string"}},
            },
        },
        "labels": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["at", "event"],
                "properties": {"at": {"type": "string"}, "event": {"type": "string"}},
            },
        },
        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
        "rating": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "reference": {"type": "string", "minLength": 3},
    },
}


def document(size: int) -> dict[str, Any]:
    """A schema-valid document of about `size` bytes of JSON: an order with many items and a history."""
    doc: dict[str, Any] = {
        "id": "ORD-2024-118734",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.org", "tier": "enterprise"},
        "items": [],
        "total": 0.0,
        "currency": "EUR",
        "status": "shipped",
        "notes": "Leave the parcel with the neighbour at number 12 if nobody answers. " * 20,
        "created": "2024-11-02T10:15:00Z",
        "updated": None,
        "priority": 3,
        "gift": False,
        "coupon": None,
        "weight_kg": 12.5,
        "channel": "web",
        "shipping": {"method": "courier", "address": ["12 Analytical Row", "London", "NW1"]},
        "labels": ["b2b", "express", "fragile"],
        "history": [],
        "attributes": {"warehouse": "LHR-3", "picker": "team-b"},
        "rating": None,
        "reference": "PO-55321",
    }
    n = 0
    while len(orjson.dumps(doc)) < size:
        n += 1
        doc["items"].append(
            {
                "sku": f"KB-{1000 + n}",
                "name": f"Mechanical keyboard, brown switches, batch {n}",
                "quantity": 1 + n % 5,
                "unit_price": round(9.95 + n * 0.37, 2),
                "tags": ["hardware", "input"],
                "discount": None if n % 3 else 0.1,
            }
        )
        if n % 4 == 0:
            doc["history"].append({"at": f"2024-11-{1 + n % 28:02d}T08:00:00Z", "event": f"scan {n}"})
        doc["total"] = round(doc["total"] + 9.95 + n * 0.37, 2)
    return doc


def completion(text: str) -> dict[str, Any]:
    """An OpenAI chat completion carrying `text`."""
    return {
        "id": "chatcmpl-large",
        "object": "chat.completion",
        "created": 0,
        "model": "fixed",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": len(text) // 4,
            "total_tokens": 50 + len(text) // 4,
        },
    }


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm: compile the schema
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


def run(size: int = 100_000, repeats: int = 30, profile: bool = False) -> dict[str, float]:
    """Median ms per call for each way of judging the large answer."""
    registry = default_registry(plugins=False)
    text = orjson.dumps(document(size)).decode()
    answer = completion(text)
    raw_format = orjson.dumps({"type": "json_schema", "json_schema": {"name": "order", "schema": SCHEMA}})

    def ctx() -> RequestContext:  # a fresh schema dict and budget per call, as each request has
        return RequestContext(response_format=orjson.loads(raw_format), budget=Budget(10_000))

    out: dict[str, float] = {"size_bytes": float(len(text))}
    for name in ("default", "strict-json", "pii-redact"):
        policy = load_policy(ROOT / "policies" / f"{name}.yaml", registry)
        validators = policy.validators_for(registry, ctx())

        def call(validators: Any = validators) -> None:
            verdict = judge(answer, validators, ctx(), allow_repair=True)
            if not verdict.ok:
                raise SystemExit(f"the large answer failed validation: {verdict.violations}")

        out[f"judge_{name}_ms"] = _median_ms(call, repeats)
        if profile and name == "default":
            prof = cProfile.Profile()
            prof.runcall(lambda: [call() for _ in range(10)])
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    validators = load_policy(ROOT / "policies" / "strict-json.yaml", registry).validators_for(registry, ctx())
    out["check_ms"] = _median_ms(lambda: check(validators, Output(text), ctx()), repeats)
    doc = orjson.loads(text)
    compiled = registry.schema_cache.get(SCHEMA)
    out["schema_only_ms"] = _median_ms(lambda: compiled.is_valid(doc), repeats)
    out["parse_ms"] = _median_ms(lambda: Output(text).json_error(), repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    figures = run(args.size, args.repeats, args.profile)
    print(
        f"answer: {figures.pop('size_bytes'):.0f} bytes of JSON, {len(SCHEMA['properties'])}-property schema"
    )
    for name, value in figures.items():
        mark = f"   (target <= {TARGET_MS:g} ms)" if name.startswith("judge_") else ""
        print(f"  {name:<22} {value:7.2f} ms{mark}")


if __name__ == "__main__":
    main()
