"""Start, watch and stop one subject process; read its tree's CPU time and RSS from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and resident bytes of a process tree at one instant."""

    cpu_s: float
    rss_bytes: int


class StartError(RuntimeError):
    """A subject did not answer its health check in time, or exited first."""


def parse_stat(text: str) -> tuple[int, float]:
    """(ppid, utime+stime seconds) from the text of /proc/PID/stat; comm may hold spaces and ')'."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3]; ppid is 4, utime 14, stime 15.
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:  # the process ended between listing and reading
        return None


def tree(root: int) -> list[int]:
    """`root` and every process descending from it, found through the ppid of each live process."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = _read(f"/proc/{name}/stat")
        if text is not None:
            children.setdefault(parse_stat(text)[0], []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def usage(root: int) -> Usage:
    """CPU time and RSS summed over the process tree of `root`."""
    cpu, rss = 0.0, 0
    for pid in tree(root):
        stat, statm = _read(f"/proc/{pid}/stat"), _read(f"/proc/{pid}/statm")
        if stat is None or statm is None:
            continue
        cpu += parse_stat(stat)[1]
        rss += int(statm.split()[1]) * PAGE
    return Usage(cpu, rss)


def busy_cpu_s() -> float:
    """Seconds of CPU the whole machine spent busy since boot (all cores; /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def settle(pids: Sequence[int], window: float = 0.1, timeout: float = 60.0) -> float:
    """Wait until the trees of `pids` use at most one clock tick in a `window`; seconds waited."""
    started = time.perf_counter()
    before = sum(usage(pid).cpu_s for pid in pids)
    while time.perf_counter() - started < timeout:
        time.sleep(window)
        now = sum(usage(pid).cpu_s for pid in pids)
        if now - before <= 1.0 / CLK_TCK:
            break
        before = now
    return time.perf_counter() - started


def tcp_ok(url: str) -> bool:
    """True when tcp://HOST:PORT accepts a connection."""
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0, headers: Mapping[str, str] | None = None) -> bool:
    """True when GET `url` answers 2xx."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


class Server:
    """One subject process: started in its own session, so stopping it stops its workers too."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.argv, self.env, self.log, self.cwd = list(argv), dict(env), log, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The root process id (raises when not running)."""
        if self.proc is None:
            raise StartError("not started")
        return self.proc.pid

    def start(self, health_url: str, timeout: float, headers: Mapping[str, str] | None = None) -> float:
        """Start and poll `health_url`; seconds from spawn to the first 2xx."""
        self.stop()
        with self.log.open("ab") as log:
            started = time.perf_counter()
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:  # not installed, not executable
                raise StartError(f"cannot run {self.argv[0]}: {exc}") from exc
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise StartError(
                    f"exited with status {self.proc.returncode} before answering; see {self.log}"
                )
            if tcp_ok(health_url) if health_url.startswith("tcp://") else http_ok(health_url, 0.5, headers):
                return time.perf_counter() - started
            time.sleep(0.02)
        self.stop()
        raise StartError(f"no 2xx from {health_url} within {timeout:.0f} s; see {self.log}")

    def alive(self) -> bool:
        """True while the root process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        _reap_group(proc.pid)


def _reap_group(pgid: int) -> None:
    """Kill what is left of the group (workers whose parent exited first)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
