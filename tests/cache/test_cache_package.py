"""The package surface: backend selection, the CLI helpers, `__all__`, and the import boundary."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import proxy.cache as cache_pkg
from proxy.cache import (
    CacheBackend,
    NoCache,
    cache_clear,
    cache_prune,
    cache_stats,
    open_backend,
)

REPO = Path(__file__).resolve().parents[2]
# Known deviations from docs/architecture.md ("only proxy/cache/ imports diskcache and redis"), each
# named so that a new one fails: these talk to Redis for state shared across replicas (rpm/tpm limits,
# cooldowns and the retry budget, feedback records).
KNOWN_EXCEPTIONS = {
    "proxy/health_state.py": {"redis"},
    "proxy/ratelimit.py": {"redis"},
    "proxy/records/store.py": {"redis"},
}


@pytest.mark.asyncio
async def test_open_backend_by_name(tmp_path: Path) -> None:
    disk = open_backend("disk", path=tmp_path / "c", url="", size_limit_mb=1)
    redis = open_backend(
        "redis", path=tmp_path / "unused", url="redis://127.0.0.1:1/0", size_limit_mb=1, secret="s" * 16
    )
    none = open_backend("none", path=tmp_path / "unused", url="", size_limit_mb=1)
    assert [b.name for b in (disk, redis, none)] == ["disk", "redis", "none"]
    assert all(isinstance(b, CacheBackend) for b in (disk, redis, none))
    assert not (tmp_path / "unused").exists()  # only the disk backend touches the file system
    for backend in (disk, redis, none):
        await backend.close()
    with pytest.raises(ValueError, match="unknown cache backend 'memcached'"):
        open_backend("memcached", path=tmp_path, url="", size_limit_mb=1)


@pytest.mark.asyncio
async def test_no_cache_never_stores_and_always_grants_the_lock() -> None:
    cache = NoCache()
    assert await cache.set("k", b"v", 60) is False
    assert await cache.get("k") is None
    assert await cache.try_lock("k", 1) and await cache.try_lock("k", 1)
    assert (await cache_stats(cache))["entries"] == 0
    assert await cache_clear(cache) == 0 and await cache_prune(cache) == 0


@pytest.mark.asyncio
async def test_cli_helpers_report_counts_and_this_process_hit_ratio(tmp_path: Path) -> None:
    cache = open_backend("disk", path=tmp_path / "c", url="", size_limit_mb=1)
    assert (await cache_stats(cache))["hit_ratio"] is None
    await cache.set("a", b"1", 60)
    await cache.set("b", b"2", 0.01)
    await cache.get("a")
    await cache.get("zz")
    await cache.get("a")
    stats = await cache_stats(cache)
    assert stats["entries"] == 2 and stats["hit_ratio"] == pytest.approx(2 / 3, abs=1e-3)
    await asyncio.sleep(0.05)
    assert await cache_prune(cache) == 1
    assert await cache_clear(cache) == 1
    await cache.close()


def test_all_is_sorted_complete_and_resolvable() -> None:
    assert cache_pkg.__all__ == sorted(cache_pkg.__all__)
    for name in cache_pkg.__all__:
        assert getattr(cache_pkg, name) is not None
    public = {n for n in vars(cache_pkg) if not n.startswith("_")} - {"annotations", "TYPE_CHECKING", "Any"}
    modules = {p.stem for p in Path(cache_pkg.__file__).parent.glob("*.py")}  # submodules, once imported
    assert public - modules <= set(cache_pkg.__all__)


def test_only_the_cache_package_imports_diskcache_and_redis() -> None:
    offenders = []
    for root in ("proxy", "validators"):
        for file in (REPO / root).rglob("*.py"):
            if (REPO / "proxy" / "cache") in file.parents:
                continue
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                allowed = KNOWN_EXCEPTIONS.get(str(file.relative_to(REPO)), set())
                if any(n.split(".")[0] in {"diskcache", "redis"} - allowed for n in names):
                    offenders.append(f"{file.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
