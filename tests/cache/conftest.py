"""Cache fixtures: a throw-away redis-server on a free loopback port, a tiny tmpfs, crafted rows."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Read at import: the suite's autouse `clean_environ` removes GUARDPROXY_* variables inside tests.
NO_REDIS = os.environ.get("GUARDPROXY_NO_REDIS") == "1"
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process with no persistence, bound to 127.0.0.1:port."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        args += ["--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """SIGKILL the server (a crash, not a shutdown) and wait for it to go."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server accepts connections but answers nothing (a stalled Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server executable; a missing one fails the test unless GUARDPROXY_NO_REDIS=1."""
    if NO_REDIS:
        pytest.skip("GUARDPROXY_NO_REDIS=1: the Redis tests were switched off explicitly")
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server not found: `apt-get install -y redis-server`, or set GUARDPROXY_NO_REDIS=1")
    return found


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server per test, stopped (SIGCONT first, in case it was paused) at teardown."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(redis_binary, _free_port(), workdir).start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.resume()
        server.kill()


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
