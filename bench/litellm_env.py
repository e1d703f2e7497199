"""LiteLLM's own proxy in its own venv (.bench/litellm-venv), at the same litellm version as ours."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from bench.configs import REPO

VENV = REPO / ".bench" / "litellm-venv"

# The `proxy` extra's requirements, listed explicitly: `pip install litellm[proxy]` lets the resolver
# pick an older litellm when one extra pin (litellm-proxy-extras, litellm-enterprise) is not on the
# index, so litellm is pinned exactly and the extras' companions are left unpinned.
PROXY_DEPS = (
    "gunicorn>=23,<24",
    "uvicorn>=0.33,<1",
    "uvloop>=0.22.1,<1",
    "fastapi>=0.136.3,<1",
    "starlette>=1.0.1,<2",
    "backoff>=2.2.1,<3",
    "rq>=2.7,<3",
    "orjson>=3.11.6,<4",
    "apscheduler>=3.11.2,<4",
    "fastapi-sso>=0.19,<1",
    "pyjwt>=2.13,<3",
    "python-multipart>=0.0.27,<1",
    "cryptography>=49,<51",
    "pynacl>=1.6.2,<2",
    "websockets>=15.0.1,<16",
    "mcp>=2.3,<3",
    "httpx2>=2.10,<3",
    "litellm-proxy-extras",
    "litellm-enterprise",
    "restrictedpython>=8.5,<9",
    "hiredis>=3,<4",
    "azure-identity>=1.25.2,<2",
    "azure-storage-blob>=12.28,<13",
    # imported by litellm.proxy at start-up but declared by no package on this index
    "semver",
    "expression",
    "soundfile",
)

FORBIDDEN = ("1.82.7", "1.82.8")  # compromised releases


def our_version() -> str:
    """The litellm version installed in the project's .venv (this interpreter)."""
    return importlib.metadata.version("litellm")


def installed_version() -> str | None:
    """The litellm version in the bench venv, or None."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def ensure(log: Path) -> str:
    """Create or update the venv so it holds our litellm version and the proxy's dependencies."""
    version = our_version()
    if version in FORBIDDEN:
        raise RuntimeError(f"litellm {version} is a compromised release; refusing to install it")
    stamp = VENV / f".bench-proxy-{version}"
    if stamp.exists() and installed_version() == version:
        return version
    print(f"setting up LiteLLM proxy {version} in {VENV} (first run only; a few minutes)", flush=True)
    if not (VENV / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True, timeout=300)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    with log.open("ab") as out:
        subprocess.run(pip + ["--upgrade", "pip"], check=False, stdout=out, stderr=out, timeout=600)
        subprocess.run(
            pip + [f"litellm=={version}", *PROXY_DEPS], check=True, stdout=out, stderr=out, timeout=1800
        )
    got = installed_version()
    if got != version:
        raise RuntimeError(f"the LiteLLM venv holds litellm {got}, not {version}; see {log}")
    check = [str(VENV / "bin" / "python"), "-c", "import litellm.proxy.proxy_server"]
    env = {"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    done = subprocess.run(check, capture_output=True, text=True, timeout=300, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"LiteLLM's proxy does not import in {VENV}: {last}")
    stamp.touch()
    return version


def command(config: Path, port: int) -> list[str]:
    """LiteLLM's proxy CLI: one uvicorn worker on loopback."""
    exe = VENV / "bin" / "litellm"
    return [
        str(exe),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
