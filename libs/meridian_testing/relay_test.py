"""The counting relay in front of a real TCP server: bytes pass both ways, and each
client connection is counted once however much it sends."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from meridian_testing.relay import counting_relay
from meridian_testing.servers import free_port


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while line := self.rfile.readline():
            self.wfile.write(line.upper())


@pytest.fixture()
def echo_port() -> Iterator[int]:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


def exchange(port: int, lines: list[bytes]) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        answers = client.makefile("rb")
        replies = []
        for line in lines:
            client.sendall(line)
            replies.append(answers.readline())
        return replies


def test_the_relay_passes_bytes_and_counts_connections(echo_port: int) -> None:
    with counting_relay(free_port(), echo_port) as relay:
        assert exchange(relay.listen_port, [b"ledger\n", b"posting\n"]) == [
            b"LEDGER\n",
            b"POSTING\n",
        ]
        assert exchange(relay.listen_port, [b"one\n"]) == [b"ONE\n"]
        assert relay.accepted == 2


def test_a_target_that_does_not_answer_closes_the_client() -> None:
    with counting_relay(free_port(), free_port()) as relay:
        with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=5) as client:
            assert client.recv(1) == b""
        assert relay.accepted == 1
