"""The config files each subject is started with, written into the run's scratch folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from bench.payload import LABEL, MASTER_KEY, NORECORD_LABEL, STREAM_LABEL, mock_options

REPO = Path(__file__).resolve().parent.parent
NORECORD_POLICY = "bench-default-norecord"

_PASSTHROUGH = {
    "name": "bench-passthrough",
    "description": "Passthrough streaming with an incremental deny-list (benchmark only).",
    "mode": "enforce",
    "validators": [{"type": "regex", "deny": ["(?i)as an ai language model"]}],
    "on_fail": ["reject"],
    "cache": {"enabled": False},
    "stream": "passthrough",
}


def _dump(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def mock_config(work: Path) -> Path:
    """`guardproxy mock-server --config` file: label -> behaviour options."""
    return _dump(work / "mock.yaml", mock_options())


def policies(work: Path) -> Path:
    """A policies folder: the shipped ones, plus passthrough and buffer variants for the stream test."""
    folder = work / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((REPO / "policies").glob("*.yaml")):
        shutil.copy(source, folder / source.name)
    _dump(folder / "bench-passthrough.yaml", _PASSTHROUGH)
    buffered = {**_PASSTHROUGH, "name": "bench-buffer", "stream": "buffer"}
    buffered["description"] = "The same deny-list, buffered (benchmark only)."
    _dump(folder / "bench-buffer.yaml", buffered)
    # the shipped default policy with `record: none` (subject 5n): a policy's `record` overrides config.yaml's
    default = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    default.update(name=NORECORD_POLICY, record="none")
    _dump(folder / f"{NORECORD_POLICY}.yaml", default)
    return folder


def _deployment(upstream: str, label: str, transport: str) -> dict[str, Any]:
    return {"model": f"openai/{label}", "api_base": upstream, "api_key": "sk-mock", "transport": transport}


def guardproxy_config(
    work: Path,
    name: str,
    upstream: str,
    *,
    transport: str,
    cache: str,
    port: int,
    redis_url: str = "",
    norecord_alias: bool = False,
) -> Path:
    """A guardproxy config: alias `fixed` (default policy) on the mock, through `transport`, cache `cache`.

    `norecord_alias` adds alias `fixed-norecord`: the same deployment under the default policy with
    `record: none` (subject 5n), so the recording cost is measured in the same server process as (5).
    """
    models: dict[str, Any] = {
        LABEL: {"policy": "default", "deployments": [_deployment(upstream, LABEL, transport)]}
    }
    if norecord_alias:
        models[NORECORD_LABEL] = {
            "policy": NORECORD_POLICY,
            "deployments": [_deployment(upstream, LABEL, transport)],
        }
    cache_block: dict[str, Any] = {"backend": cache}
    if cache == "disk":
        cache_block["path"] = str(work / f"cache-{name}")
    if cache == "redis":
        cache_block["url"] = redis_url
        cache_block["secret"] = "bench-only-cache-secret-0123456789"  # required with redis (>= 16 characters)
    data = {
        "server": {"host": "127.0.0.1", "port": port},
        "models": models,
        "cache": cache_block,
        "policies_dir": str(policies(work)),
        "default_policy": "default",
    }
    return _dump(work / f"guardproxy-{name}.yaml", data)


def stream_config(work: Path, upstream: str, port: int) -> Path:
    """A guardproxy config for the time-to-first-byte test: passthrough and buffered aliases."""
    models = {
        "passthrough": {
            "policy": "bench-passthrough",
            "deployments": [_deployment(upstream, STREAM_LABEL, "direct")],
        },
        "buffered": {
            "policy": "bench-buffer",
            "deployments": [_deployment(upstream, STREAM_LABEL, "direct")],
        },
    }
    data = {
        "server": {"host": "127.0.0.1", "port": port},
        "models": models,
        "cache": {"backend": "none"},
        "policies_dir": str(policies(work)),
        "default_policy": "default",
    }
    return _dump(work / "guardproxy-stream.yaml", data)


def litellm_config(work: Path, upstream: str) -> Path:
    """LiteLLM proxy config: one model on the mock, a master key, no database, no callbacks."""
    data = {
        "model_list": [
            {
                "model_name": LABEL,
                "litellm_params": {"model": f"openai/{LABEL}", "api_base": upstream, "api_key": "sk-mock"},
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True, "num_retries": 0},
        "general_settings": {"master_key": MASTER_KEY, "disable_spend_logs": True},
    }
    return _dump(work / "litellm.yaml", data)
