"""Token prices per deployment: the deployment's own, else litellm's bundled price map (read as data)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from ..settings import Deployment

__all__ = ["Prices", "load_price_map"]


def load_price_map() -> Mapping[str, Any]:
    """litellm's bundled model price map, read from its package files without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            try:
                data = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


class Prices:
    """(input, output) US dollars per token for a deployment, or None when unknown."""

    def __init__(self, price_map: Mapping[str, Any]) -> None:
        self._map = price_map

    def of(self, dep: Deployment) -> tuple[float, float] | None:
        if dep.input_cost_per_token is not None or dep.output_cost_per_token is not None:
            return dep.input_cost_per_token or 0.0, dep.output_cost_per_token or 0.0
        entry = self._map.get(dep.model) or self._map.get(dep.wire_model)
        if not isinstance(entry, dict):
            return None
        inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if not isinstance(inp, int | float) or not isinstance(out, int | float):
            return None
        return float(inp), float(out)

    def cost(self, dep: Deployment, usage: Mapping[str, Any] | None) -> float | None:
        prices = self.of(dep)
        if prices is None or not usage:
            return None
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        return prompt * prices[0] + completion * prices[1]
