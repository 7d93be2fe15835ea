"""The benchmark's stack: the real processes.yaml on other ports, real processes."""

import sys
from pathlib import Path

import pytest

from bench.devloop.stack import LocalStack, StackError, remapped
from meridian_devstack.stack import Process, load_stack
from meridian_testing.servers import free_port

PROCESSES = Path("deployments/local/processes.yaml")


def test_every_port_and_every_setting_naming_one_moves() -> None:
    declared = load_stack(PROCESSES)
    ports = {process.port: 40000 + index for index, process in enumerate(declared)}
    moved = {p.name: p for p in remapped(declared, ports)}
    for process in declared:
        again = moved[process.name]
        assert again.port == ports[process.port]
        text = " ".join([*again.cmd, *again.env.values()])
        for old in ports:
            assert f":{old}" not in text, (process.name, old)
            assert f" {old} " not in f" {text} ", (process.name, old)
    account = moved["current-account"]
    declared_port = next(p.port for p in declared if p.name == account.name)
    assert account.env["PORT"] == str(ports[declared_port])
    assert account.env["DATABASE_URL"].endswith(f":{ports[26257]}/current_account")
    assert account.env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{ports[9092]}"
    assert str(ports[6379]) in moved["redis"].cmd


def _web(name: str, port: int, say: str = "") -> Process:
    code = f"print({say!r}, flush=True); import http.server, sys; sys.argv=['x', '--bind', '127.0.0.1', '{port}']; http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port={port}, bind='127.0.0.1')"
    return Process(name=name, cmd=(sys.executable, "-c", code), port=port, ready_path="/")


def test_processes_restart_on_their_own_and_are_waited_for(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, tmp_path)
    web, api = _web("web", free_port(), "first"), _web("api", free_port())
    try:
        stack.start(web)
        first_api = stack.start(api)
        stack.wait_ready(["web", "api"], 30)
        stack.restart(_web("web", web.port, "second"))
        stack.wait_ready(["web"], 30, marker="second")
        assert stack.running["api"] is first_api, "only the restarted process is new"
    finally:
        stack.stop_all()
    assert not stack.running


def test_a_process_that_exits_fails_the_wait_with_its_output(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, tmp_path)
    dies = Process(
        name="dies",
        cmd=(sys.executable, "-c", "print('no config'); raise SystemExit(2)"),
        port=free_port(),
    )
    stack.start(dies)
    with pytest.raises(StackError, match="dies exited with 2:\nno config"):
        stack.wait_ready(["dies"], 30)
