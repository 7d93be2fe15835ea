"""The stack runner against real processes: start everything, report, stop cleanly."""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from meridian_devstack.main import main
from meridian_testing.process import child_environment
from meridian_testing.servers import RedisServer, free_port

SERVICE_CODE = (
    "from meridian_chassis import ServiceSpec, run; "
    "run(ServiceSpec('ledger', frozenset({'redis'})))"
)


def _http_server(name: str, port: int) -> str:
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    return f"  - name: {name}\n    cmd: {argv!r}\n    port: {port}\n    ready_path: /\n"


def _write(tmp_path: Path, *entries: str) -> str:
    stack = tmp_path / "processes.yaml"
    stack.write_text("processes:\n" + "".join(entries))
    return str(stack)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_starts_every_process_reports_urls_and_stops_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = free_port(), free_port()
    stack = _write(tmp_path, _http_server("web", ports[0]), _http_server("api", ports[1]))
    assert main([stack, "--exit-when-ready", "--ready-timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "Meridian is running" in out
    for port in ports:
        assert f"http://127.0.0.1:{port}/" in out
        assert not _listening(port)


def test_a_process_that_dies_while_starting_fails_the_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dies = f"  - name: dies\n    cmd: [{sys.executable!r}, -c, 'raise SystemExit(3)']\n    port: {free_port()}\n"
    port = free_port()
    stack = _write(tmp_path, _http_server("web", port), dies)
    assert main([stack, "--exit-when-ready", "--ready-timeout", "20"]) == 1
    assert "dies exited with code 3 while starting" in capsys.readouterr().err
    assert not _listening(port)


def test_busy_port_is_reported_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([_write(tmp_path, _http_server("web", port)), "--exit-when-ready"]) == 1
    assert f"web: port {port} is already in use by pid {os.getpid()}" in capsys.readouterr().err


def _process(name: str, argv: list[str], port: int, **fields: object) -> str:
    entry = {"name": name, "cmd": argv, "port": port, **fields}
    return "  - " + json.dumps(entry) + "\n"


def _runner(stack: str, *options: str) -> subprocess.Popen[str]:
    code = "import sys; from meridian_devstack.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, stack, *options],
        env=child_environment({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_service_that_is_not_ready_is_reported_with_its_failing_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed_port, port = free_port(), free_port()
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_URL": f"redis://127.0.0.1:{closed_port}/0",
        "READINESS_CACHE_SECONDS": "0",
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
    }
    service = _process(
        "ledger", [sys.executable, "-c", SERVICE_CODE], port, ready_path="/health/ready", env=env
    )
    assert main([_write(tmp_path, service), "--exit-when-ready", "--ready-timeout", "8"]) == 1
    captured = capsys.readouterr()
    assert "ledger was not ready within 8s:" in captured.err
    assert f"redis: ConnectionError: Error 111 connecting to 127.0.0.1:{closed_port}" in (
        captured.err
    )
    assert re.search(r"last \d+ lines of ledger:\n", captured.err)
    assert '"message": "starting"' in captured.err
    # The runner asked /health/ready dozens of times; none of that is in the console.
    assert "/health/ready" not in captured.out.replace("http://127.0.0.1", "")
    assert "waiting for ledger:\n    redis: ConnectionError" in captured.out
    assert not _listening(port)


def test_a_process_that_dies_while_running_is_reported_with_its_last_lines(
    tmp_path: Path,
) -> None:
    port = free_port()
    dying = (
        "import socket, sys, time\n"
        f"s = socket.create_server(('127.0.0.1', {port}))\n"
        "print('backing server up', flush=True)\n"
        "time.sleep(1)\n"
        "print('FATAL: out of disk space', flush=True)\n"
        "sys.exit(4)\n"
    )
    stack = _write(tmp_path, _process("store", [sys.executable, "-c", dying], port))
    runner = _runner(stack, "--ready-timeout", "20")
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 1
    assert "store exited with code 4 unexpectedly; stopping the stack" in out
    assert "last 2 lines of store:\n    backing server up\n    FATAL: out of disk space" in out
    assert re.search(r"  store +pid \d+ +ran [\d.]+s +exited with code 4", out), out


def test_ctrl_c_stops_everything_and_prints_what_ran(tmp_path: Path) -> None:
    ports = free_port(), free_port()
    stack = _write(tmp_path, _http_server("web", ports[0]), _http_server("api", ports[1]))
    runner = _runner(stack, "--ready-timeout", "20")
    assert runner.stdout is not None
    lines = []
    for line in runner.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    time.sleep(1.2)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0
    summary = out[out.index("Meridian ran for") :]
    for name in ("web", "api"):
        match = re.search(rf"  {name} +pid \d+ +ran (\d+\.\d)s +killed by SIGTERM", summary)
        assert match is not None, summary
        assert float(match[1]) >= 1.0
    for port in ports:
        assert not _listening(port)


def _lines(runner: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in runner.stdout or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], text: str, seen: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return True
    return False


def test_a_running_service_that_stops_being_ready_is_reported_with_why(tmp_path: Path) -> None:
    redis = RedisServer(free_port(), tmp_path / "redis")
    redis.workdir.mkdir()
    redis.start()
    port = free_port()
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_URL": redis.url(),
        "READINESS_CACHE_SECONDS": "0",
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
    }
    service = _process(
        "ledger", [sys.executable, "-c", SERVICE_CODE], port, ready_path="/health/ready", env=env
    )
    runner = _runner(_write(tmp_path, service), "--ready-timeout", "30", "--watch-interval", "0.5")
    lines, seen = _lines(runner), list[str]()
    try:
        assert _wait_for(lines, "Press Ctrl-C", seen, 40), "".join(seen)
        redis.stop()
        assert _wait_for(lines, "ledger is not ready:", seen, 15), "".join(seen)
        assert _wait_for(lines, "redis: ConnectionError", seen, 5), "".join(seen)
        redis.start()
        assert _wait_for(lines, "ledger is ready again", seen, 15), "".join(seen)
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(30)
        redis.stop()
    assert runner.returncode == 0


def test_services_start_while_their_backing_servers_are_still_starting(tmp_path: Path) -> None:
    """Everything starts at once; a service is ready once the servers it checks are."""
    redis_port, port = free_port(), free_port()
    service_started, redis_exec = tmp_path / "service-started", tmp_path / "redis-exec"
    slow_redis = (
        "import os, pathlib, shutil, time\n"
        "time.sleep(2)\n"
        f"pathlib.Path({str(redis_exec)!r}).write_text(repr(time.time()))\n"
        "os.execv(shutil.which('redis-server'), ['redis-server', '--port', "
        f"'{redis_port}', '--bind', '127.0.0.1', '--save', '', '--dir', {str(tmp_path)!r}])\n"
    )
    service_code = (
        f"import pathlib, time; pathlib.Path({str(service_started)!r}).write_text(repr(time.time()))\n"
        + SERVICE_CODE
    )
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "READINESS_CACHE_SECONDS": "0",
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
    }
    stack = _write(
        tmp_path,
        _process("redis", [sys.executable, "-c", slow_redis], redis_port, labels=["backing"]),
        _process(
            "ledger",
            [sys.executable, "-c", service_code],
            port,
            ready_path="/health/ready",
            env=env,
            labels=["services"],
        ),
    )
    runner = _runner(stack, "--exit-when-ready", "--ready-timeout", "30")
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, out
    assert "Meridian is running" in out
    assert float(service_started.read_text()) < float(redis_exec.read_text())
    assert not _listening(port)
    assert not _listening(redis_port)


def test_ctrl_c_while_starting_stops_what_started(tmp_path: Path) -> None:
    port = free_port()
    never_ready = [sys.executable, "-c", "import time; time.sleep(120)"]
    runner = _runner(
        _write(tmp_path, _process("stuck", never_ready, port)), "--ready-timeout", "60"
    )
    time.sleep(1.5)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 130, out
    assert "Meridian is running" not in out
    assert re.search(r"  stuck +pid \d+ +ran [\d.]+s +killed by SIGTERM", out), out
