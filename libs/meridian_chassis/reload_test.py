"""Live reload: a changed source file restarts the real service process in place."""

import os
import py_compile
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from meridian_chassis.reload import SourceWatcher, forget_bytecode
from meridian_testing.process import python_command, running_service, wait_until

PROBE_V1 = """
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def answer(request):
    return PlainTextResponse("v1")

ROUTES = [Route("/answer", answer)]
"""


def test_watcher_fires_once_after_changes_settle(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    fired = threading.Event()
    watcher = SourceWatcher([tmp_path], fired.set, interval=0.05, settle=0.1)
    watcher.start()
    time.sleep(0.2)
    assert not fired.is_set()
    source.write_text("x = 2\n")
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fired.wait(5)
    assert watcher.changed.is_set()
    watcher.stop()


def reload_probe(root: Path) -> tuple[Path, str]:
    """A package serving /answer under `root`, and the code of a service that serves it."""
    package = root / "reload_probe"
    package.mkdir()
    (package / "__init__.py").write_text(PROBE_V1)
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "from reload_probe import ROUTES\n"
        "from meridian_chassis import ServiceSpec, run\n"
        "run(ServiceSpec('reload-probe', routes=ROUTES))\n"
    )
    return package, code


def test_service_restarts_in_place_when_its_package_changes(tmp_path: Path) -> None:
    package, code = reload_probe(tmp_path)
    with running_service(python_command(code), {"MERIDIAN_RELOAD": "1"}) as service:
        assert service.get("/answer").text == "v1"
        pid = service.process.pid
        time.sleep(0.5)  # let the watcher take its first snapshot
        (package / "__init__.py").write_text(PROBE_V1.replace('"v1"', '"v2"'))
        assert wait_until(lambda: service.get("/answer").text == "v2", timeout=20)
        assert service.process.pid == pid  # the same process, re-executed
        assert service.process.poll() is None


def ask_until_v2(port: int, deadline: float, pause: float) -> tuple[list[str], list[str]]:
    """Answers to back-to-back one-request connections, each sending its request `pause`
    seconds after connecting (as through a port-forward), until one says v2; and the
    failures seen (a refused or reset connection)."""
    answers: list[str] = []
    failures: list[str] = []
    while time.monotonic() < deadline and answers[-1:] != ["v2"]:
        try:
            with socket.create_connection(("127.0.0.1", port), 5) as conn:
                time.sleep(pause)
                conn.sendall(b"GET /answer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                reply = b""
                while chunk := conn.recv(4096):
                    reply += chunk
            answers.append(reply.decode().rsplit("\r\n\r\n", 1)[-1])
        except (ConnectionRefusedError, ConnectionResetError) as error:
            failures.append(type(error).__name__)
        time.sleep(0.005)
    return answers, failures


def test_no_connection_is_refused_or_reset_while_the_service_reloads(tmp_path: Path) -> None:
    # A refused connection ends a port-forward ("lost connection to pod"): the socket
    # keeps listening through the re-exec and the new process answers what waited. A
    # connection the old process accepted is answered before it exits: not reset, not
    # closed unanswered.
    package, code = reload_probe(tmp_path)
    with running_service(python_command(code), {"MERIDIAN_RELOAD": "1"}) as service:
        assert service.get("/answer").text == "v1"
        time.sleep(0.5)  # let the watcher take its first snapshot
        deadline = time.monotonic() + 30
        results: list[tuple[list[str], list[str]]] = []
        clients = [
            threading.Thread(
                target=lambda pause=pause: results.append(
                    ask_until_v2(service.port, deadline, pause)
                )
            )
            for pause in (0, 0.01, 0.05, 0.1)
        ]
        for client in clients:
            client.start()
        (package / "__init__.py").write_text(PROBE_V1.replace('"v1"', '"v2"'))
        for client in clients:
            client.join()
        for answers, failures in results:
            assert answers[-1:] == ["v2"], answers[-5:]
            assert failures == [], f"{failures} during the reload ({len(answers)} answered)"
            assert set(answers) <= {"v1", "v2"}, (answers.count(""), len(answers))


def test_an_edit_that_keeps_mtime_second_and_size_is_not_served_from_old_bytecode(
    tmp_path: Path,
) -> None:
    source = tmp_path / "edited.py"
    source.write_text("ANSWER = 1\n")
    py_compile.compile(str(source))
    stamp = source.stat().st_mtime_ns
    source.write_text("ANSWER = 2\n")  # same size, and the same second:
    os.utime(source, ns=(stamp, stamp))

    def answer() -> str:
        run = [sys.executable, "-c", "import edited; print(edited.ANSWER)"]
        return subprocess.run(
            run, cwd=tmp_path, capture_output=True, text=True, check=False
        ).stdout.strip()

    assert answer() == "1"  # the stale .pyc wins: what a reload would otherwise run
    forget_bytecode([source])
    assert answer() == "2"
