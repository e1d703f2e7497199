"""Hot reload: on SIGHUP or when config.yaml or a policy file changes, load the new set whole; if it is
invalid, keep serving the old one and log the problems. Requests in flight keep the runtime they
started with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from .resilience import Resilience
from .services import Runtime, load_runtime
from .settings import load_settings
from .yamlfile import ConfigError

__all__ = ["Reloader"]

log = logging.getLogger("guardproxy.reload")


class Reloader:
    """Watches the config file and the policies folder (mtimes, polled) and swaps the runtime."""

    def __init__(
        self,
        config_path: Path,
        get: Callable[[], Runtime],
        swap: Callable[[Runtime], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self._path = config_path
        self._get = get
        self._swap = swap
        self._interval = interval
        self._stamp = self._fingerprint()
        self._wake = asyncio.Event()
        self.reloads = 0
        self.failures = 0

    def _fingerprint(self) -> tuple[tuple[str, float, int], ...]:
        files = [self._path]
        folder = self._get().settings.policies_dir
        if folder.is_dir():
            files.extend(sorted([*folder.glob("*.yaml"), *folder.glob("*.json")]))
        out = []
        for f in files:
            with contextlib.suppress(OSError):
                st = f.stat()
                out.append((str(f), st.st_mtime, st.st_size))
        return tuple(out)

    def request(self) -> None:
        """Ask for a reload now (the SIGHUP handler)."""
        self._wake.set()

    def reload(self) -> bool:
        """Load the files again; swap on success. Returns whether the new set is serving."""
        try:
            fresh = load_runtime(self._path, resilience=self._keep_resilience())
        except ConfigError as exc:
            self.failures += 1
            for problem in exc.problems:
                log.error("reload refused, still serving the previous config: %s", problem)
            return False
        self._swap(fresh)
        self.reloads += 1
        log.warning(
            "configuration reloaded (%d models, %d policies)", len(fresh.settings.models), len(fresh.policies)
        )
        return True

    def _keep_resilience(self) -> Resilience | None:

        current = self._get()
        try:
            retry = load_settings(self._path).retry
        except ConfigError:
            return None
        return current.resilience if retry == current.settings.retry else None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, self.request)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            forced = self._wake.is_set()
            self._wake.clear()
            stamp = self._fingerprint()
            if forced or stamp != self._stamp:
                self._stamp = stamp
                self.reload()
