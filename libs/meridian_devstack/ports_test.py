"""The port check `make run` does before building, against real listeners and the real
processes.yaml."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from meridian_devstack import ports
from meridian_devstack.stack import load_stack

PROCESSES = Path("deployments/local/processes.yaml")


def test_reads_the_generated_processes_file_as_the_stack_runner_does() -> None:
    declared = ports.declared_ports(PROCESSES.read_text())
    assert declared == [(p.name, p.port) for p in load_stack(PROCESSES)]


def test_a_file_without_ports_is_an_error_naming_the_fix() -> None:
    with pytest.raises(ports.PortsFileError, match="make services"):
        ports.declared_ports("processes: []\n", "x.yaml")


def test_names_the_process_that_holds_a_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert ports.port_accepts(port)
        message = ports.describe_taken("web", port)
    assert message.startswith(f"web: port {port} is already in use by pid {os.getpid()} (")
    assert "python" in message


def test_a_free_port_is_not_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert ports.taken([("web", port)]) == []
    assert ports.holders(port) == []


def run_script(tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    """ports.py as `make run` runs it, on a stack of one process on `port`."""
    stack = tmp_path / "processes.yaml"
    stack.write_text(f"processes:\n  - name: redis\n    cmd: [x]\n    port: {port}\n")
    # -S -I: no site-packages, no PYTHONPATH: what a bare host python3 has.
    return subprocess.run(
        [sys.executable, "-S", "-I", ports.__file__, str(stack)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_script_fails_naming_the_holder_with_the_standard_library_only(
    tmp_path: Path,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_script(tmp_path, port)
    assert result.returncode == 1
    assert f"redis: port {port} is already in use by pid {os.getpid()}" in result.stderr


def test_the_script_passes_when_every_port_is_free(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_script(tmp_path, port)
    assert (result.returncode, result.stderr) == (0, "")
