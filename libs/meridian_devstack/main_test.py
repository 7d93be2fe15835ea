"""The stack runner against real processes: start in order, report, stop cleanly."""

import socket
import sys
from pathlib import Path

import pytest

from meridian_devstack.main import main
from meridian_testing.servers import free_port


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
    assert f"web: port {port} is already in use" in capsys.readouterr().err
