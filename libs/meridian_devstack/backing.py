"""Run one backing server (PostgreSQL, Redis or a Kafka broker) in the foreground.

Data lives under --data so a local stack keeps its state between runs; SIGINT or
SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from meridian_testing.servers import KafkaServer, PostgresServer, RedisServer, Server, ServerError


def _build(args: argparse.Namespace) -> Server:
    workdir = Path(args.data).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.kind == "postgres":
        postgres = PostgresServer(args.port, workdir)
        if not postgres.datadir.exists():
            postgres.prepare()
        return postgres
    if args.kind == "redis":
        return RedisServer(args.port, workdir)
    return KafkaServer(args.port, workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["postgres", "redis", "kafka"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True, help="directory for the server's data and log")
    parser.add_argument(
        "--database", action="append", default=[], help="PostgreSQL database to ensure"
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = _build(args)
        server.start()
        if isinstance(server, PostgresServer):
            for database in args.database:
                server.ensure_database(database)
    except ServerError as error:
        print(f"{args.kind}: {error}", file=sys.stderr)
        return 1
    print(
        f"{args.kind} listening on 127.0.0.1:{args.port} (log: {server.workdir}/{server.name}.log)"
    )
    sys.stdout.flush()
    while not stop.wait(0.5):
        if server.process is not None and server.process.poll() is not None:
            print(
                f"{args.kind} exited with {server.process.returncode}:\n{server.log_tail()}",
                file=sys.stderr,
            )
            return 1
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
