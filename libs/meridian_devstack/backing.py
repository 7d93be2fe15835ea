"""Run one backing server (PostgreSQL, Redis or a Kafka broker) in the foreground.

Data lives under --data so a local stack keeps its state between runs; SIGINT or
SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import argparse
import hashlib
import pwd
import signal
import stat
import sys
import threading
from pathlib import Path

from meridian_testing.servers import (
    KafkaServer,
    PostgresServer,
    RedisServer,
    Server,
    ServerError,
    blocking_directory,
    postgres_user,
)

# World-writable with the sticky bit, kept across reboots, reachable by every user.
RELOCATED_ROOT = Path("/var/tmp")  # noqa: S108 - private subdirectory checked before use


def relocated_workdir(requested: Path) -> Path:
    digest = hashlib.sha256(str(requested).encode()).hexdigest()[:12]
    return RELOCATED_ROOT / f"meridian-postgres-{digest}"


def postgres_workdir(requested: Path) -> Path:
    """`requested`, or when PostgreSQL's user cannot reach it (root in a clone under a
    private directory, e.g. root's home), a directory under /var/tmp that `requested`
    becomes a link to (so the next run, and `make clean`, find it)."""
    user = postgres_user()
    if user is None:
        return requested
    # Its parent (.local/) may not exist yet in a fresh clone: made now, so that what is
    # checked is the directory PostgreSQL will be given.
    requested.parent.mkdir(parents=True, exist_ok=True)
    blocked = blocking_directory(requested, user)
    if blocked is None:
        return requested
    relocated = relocated_workdir(requested)
    print(
        f"postgres: its user `{user}` cannot enter {blocked} "
        f"(mode {stat.S_IMODE(blocked.stat().st_mode):o}), so its data lives in {relocated}; "
        f"{requested} links there",
        flush=True,
    )
    relocated.mkdir(mode=0o700, exist_ok=True)
    # /var/tmp is shared: a directory another user made there in advance must not be used.
    info = relocated.lstat()
    owners = {0, pwd.getpwnam(user).pw_uid}
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners or info.st_mode & 0o077:
        raise ServerError(
            f"{relocated} is not a private directory of root or `{user}` (mode "
            f"{stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}); remove it and run again"
        )
    if not requested.exists():
        requested.parent.mkdir(parents=True, exist_ok=True)
        requested.symlink_to(relocated)
    return relocated


def _build(args: argparse.Namespace) -> Server:
    workdir = Path(args.data).resolve()
    if args.kind == "postgres":
        workdir = postgres_workdir(workdir)
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
