"""Cache fixtures: a tiny tmpfs (the redis-server fixtures live in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer, redis_binary, redis_server  # noqa: F401 - re-exported


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


class Tmpfs:
    """Mounts small tmpfs file systems under tmp_path (root only); unmounted at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounted: list[Path] = []

    def mount(self, size: int) -> Path | None:
        """A fresh tmpfs of `size` bytes, or None where this process may not mount."""
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return None
        target = self.base / f"tmpfs{len(self.mounted)}"
        target.mkdir()
        argv = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target)]
        if subprocess.run(argv, capture_output=True).returncode != 0:
            return None
        self.mounted.append(target)
        return target

    def read_only(self, target: Path) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True, capture_output=True)

    def unmount_all(self) -> None:
        for target in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    mounter = Tmpfs(tmp_path)
    yield mounter
    mounter.unmount_all()
