"""Hot reload: on SIGHUP or when config.yaml or a policy file changes, load the new set whole; if it is
invalid, keep serving the old one and log the problems. Requests in flight keep the runtime they
started with.

The watcher task must outlive anything a file can do: every failure (a `ConfigError`, a
`RecursionError` from a hostile file, an unreadable folder) is logged and counted, and the loop goes
on, so the next good edit still applies. A changed file is applied only once it has stayed the same
across two polls and still has that stamp after it was read: an editor or `cp` that is half-way
through writing it is waited for, not applied (a truncated `auth` section must not open the proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from .services import Runtime, load_runtime
from .settings import load_settings
from .yamlfile import ConfigError

__all__ = ["Reloader"]

log = logging.getLogger("guardproxy.reload")

Stamp = tuple[tuple[str, int, int, int], ...]


class Reloader:
    """Watches the config file and the policies folder (stat, polled) and swaps the runtime."""

    def __init__(
        self,
        config_path: Path,
        get: Callable[[], Runtime],
        swap: Callable[[Runtime], None],
        *,
        interval: float | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._path = config_path
        self._get = get
        self._swap = swap
        self._interval = interval  # None: the serving config's `server.reload_interval`
        self._on_failure = on_failure or (lambda: None)
        self._stamp = self._fingerprint()  # what the serving runtime was loaded from (or refused)
        self._pending: Stamp | None = None  # a changed stamp seen at the last poll, not yet stable
        self._wake = asyncio.Event()
        self.reloads = 0
        self.failures = 0

    def _fingerprint(self) -> Stamp:
        files = [self._path]
        folder = self._get().settings.policies_dir
        if folder.is_dir():
            files.extend(sorted([*folder.glob("*.yaml"), *folder.glob("*.json")]))
        out = []
        for f in files:
            with contextlib.suppress(OSError):
                st = f.stat()  # the inode too: an atomic rename may keep size and mtime
                out.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    @property
    def interval(self) -> float:
        """Seconds between two polls; a reload that changes `server.reload_interval` applies it."""
        if self._interval is not None:
            return self._interval
        return self._get().settings.server.reload_interval

    def request(self) -> None:
        """Ask for a reload now (the SIGHUP handler)."""
        self._wake.set()

    async def reload(self) -> bool:
        """Load the files again (in a thread) and swap on success; never raises.

        Returns whether the new set is serving. A file that changed while it was read is not applied:
        the next stable poll loads it again.
        """
        stamp = self._fingerprint()
        try:
            fresh = await asyncio.to_thread(self._load)
        except ConfigError as exc:
            self._refused(stamp, [str(p) for p in exc.problems])
            return False
        except Exception as exc:  # noqa: BLE001 - whatever a file does, the previous set keeps serving
            self._refused(stamp, [f"{type(exc).__name__}: {str(exc)[:300]}"])
            return False
        if self._fingerprint() != stamp:
            self._pending = None  # written to while we read it: wait until it is stable again
            return False
        self._swap(fresh)
        self._stamp = self._fingerprint()  # the new config may name another policies folder
        self._pending = None
        self.reloads += 1
        log.warning(
            "configuration reloaded (%d models, %d policies)", len(fresh.settings.models), len(fresh.policies)
        )
        return True

    def _load(self) -> Runtime:
        return load_runtime(load_settings(self._path))

    def _refused(self, stamp: Stamp, problems: list[str]) -> None:
        self._stamp, self._pending = stamp, None  # not retried until a file changes again
        self.failures += 1
        self._on_failure()
        for problem in problems:
            log.error("reload refused, still serving the previous config: %s", problem)

    async def poll(self, *, forced: bool = False) -> None:
        """One look at the files: reload when forced, or when a change has been stable for a poll."""
        stamp = self._fingerprint()
        if not forced:
            if stamp == self._stamp:
                self._pending = None
                return
            if stamp != self._pending:
                self._pending = stamp  # changed since the last poll: maybe still being written
                return
        await self.reload()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, self.request)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            forced = self._wake.is_set()
            self._wake.clear()
            try:
                await self.poll(forced=forced)
            except Exception as exc:  # noqa: BLE001 - the watcher must never die (a stat, a glob, a bug)
                self.failures += 1
                self._on_failure()
                log.error("reload check failed, still serving the previous config: %s", exc)
