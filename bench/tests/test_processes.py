"""The harness against real processes: a subject started, timed, loaded with wrk, stopped."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bench import measure, procs, wrk
from bench.payload import MASTER_KEY, request_body
from bench.subjects import BENCH, free_port, subject_env


@pytest.fixture(scope="module")
def wrk_binary() -> str:
    """wrk from PATH; a missing one fails the test (`make test` installs it, as `make bench` does)."""
    found = shutil.which("wrk")
    if found is None:
        pytest.fail("wrk not found: run `make test` or `apt-get install -y wrk`")
    return found


def _server(tmp_path: Path, app: str) -> tuple[procs.Server, int]:
    port = free_port()
    argv = [sys.executable, "-m", f"bench.{app}", "--port", str(port)]
    return procs.Server(argv, subject_env(), tmp_path / f"{app}.log", BENCH.parent), port


def test_start_load_and_stop_the_fixed_app(tmp_path: Path, wrk_binary: str) -> None:
    server, port = _server(tmp_path, "fixed_app")
    try:
        startup = server.start(f"http://127.0.0.1:{port}/health", timeout=60)
        assert 0 < startup < 60
        body = json.dumps(request_body()).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}
        assert measure.check(measure.post(port, body, headers), stream=False) is None
        script = tmp_path / "post.lua"
        script.write_text(wrk.lua_script(body, headers))
        row = measure.load(
            wrk_binary, f"http://127.0.0.1:{port}/v1/chat/completions", script, 4, 1, server.pid, None
        )
        assert row["requests"] > 50 and row["errors"] == 0
        assert row["cpu_ms_per_req"] is not None and row["cpu_ms_per_req"] > 0
        assert row["p50_ms"] is not None and 0 < row["p50_ms"] <= row["p99_ms"]
        bad = measure.load(wrk_binary, f"http://127.0.0.1:{port}/nowhere", script, 2, 1, server.pid, None)
        assert bad["requests"] > 0 and bad["errors"] == bad["requests"]  # 404s count as errors
        pid = server.pid
    finally:
        server.stop()
    assert not server.alive()
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped


def test_a_subject_that_exits_is_reported_not_waited_for(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.exit(3)"]
    server = procs.Server(argv, subject_env(), tmp_path / "dead.log", tmp_path)
    try:
        with pytest.raises(procs.StartError, match="status 3"):
            server.start(f"http://127.0.0.1:{free_port()}/health", timeout=30)
    finally:
        server.stop()


def test_a_subject_that_never_answers_times_out(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    server = procs.Server(argv, subject_env(), tmp_path / "mute.log", tmp_path)
    with pytest.raises(procs.StartError, match="within"):
        server.start(f"http://127.0.0.1:{free_port()}/health", timeout=0.5)
    assert not server.alive()


def test_stream_timing_separates_first_content_from_the_end(tmp_path: Path) -> None:
    import http.client

    from bench import configs
    from bench.payload import CHUNK_DELAY_MS, CONTENT, STREAM_LABEL

    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "proxy",
        "mock-server",
        "--port",
        str(port),
        "--config",
        str(configs.mock_config(tmp_path)),
    ]
    server = procs.Server(argv, subject_env(), tmp_path / "mock.log", BENCH.parent)
    try:
        server.start(f"http://127.0.0.1:{port}/mock/stats", timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps(request_body(stream=True, structured=False, model=STREAM_LABEL)).encode()
        timings = [measure.stream_timing(conn, body, {"Content-Type": "application/json"}) for _ in range(3)]
        conn.close()
    finally:
        server.stop()
    chunks = -(-len(CONTENT) // 64)
    for t in timings:
        assert 0 < t.headers_s <= t.first_content_s < t.total_s
        assert t.total_s - t.first_content_s >= (chunks - 2) * CHUNK_DELAY_MS / 1000


def test_a_missing_program_is_a_start_error(tmp_path: Path) -> None:
    server = procs.Server(["/nonexistent/redis-server"], subject_env(), tmp_path / "x.log", tmp_path)
    with pytest.raises(procs.StartError, match="cannot run /nonexistent/redis-server"):
        server.start("tcp://127.0.0.1:1", timeout=5)


def test_tcp_readiness_sees_a_listener_and_no_listener() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert procs.tcp_ok(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    assert not procs.tcp_ok(f"tcp://127.0.0.1:{free_port()}")


def test_a_second_bench_run_in_the_same_checkout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs would share the scratch folder (and the cores): the second stops before starting anything."""
    from bench import run

    monkeypatch.setattr(run, "LOCK", tmp_path / "run.lock")
    monkeypatch.setattr(run, "bench", lambda plan: pytest.fail("the second run started its subjects"))
    with run._sole_run() as first:
        assert first
        assert run.main() == 2
    assert "another `make bench` is running" in capsys.readouterr().out
    with run._sole_run() as again:  # released when the first run ends
        assert again
