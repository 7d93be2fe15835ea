"""Which local stack ports are taken, and by which process; standard library only.

`make run` runs this with the host's python3 before it installs or builds anything
(`python3 libs/meridian_devstack/ports.py deployments/local/processes.yaml`), so a
taken port is reported in a second rather than after the build; the stack runner
reports the same way when a port is taken between the build and the start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# The layout libs/meridian_catalog writes processes.yaml in: a process starts with
# "  - name: NAME" and has "    port: N" (this module cannot rely on PyYAML).
_NAME = re.compile(r"^  - name: (?P<name>[\w.-]+)\s*$")
_PORT = re.compile(r"^    port: (?P<port>\d+)\s*$")
_TCP_LISTEN = "0A"


class PortsFileError(Exception):
    pass


def declared_ports(text: str, where: str = "processes.yaml") -> list[tuple[str, int]]:
    """(name, port) of every process in a generated processes.yaml."""
    found: list[tuple[str, int]] = []
    name: str | None = None
    for line in text.splitlines():
        if match := _NAME.match(line):
            name = match["name"]
        elif (match := _PORT.match(line)) and name is not None:
            found.append((name, int(match["port"])))
            name = None
    if not found:
        raise PortsFileError(
            f"{where}: no process with a `port:` found; regenerate it with `make services`"
        )
    return found


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
        return True
    return False


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for row in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def _command_line(pid_dir: Path) -> str:
    with contextlib.suppress(OSError):
        argv = (pid_dir / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        text = " ".join(part.decode(errors="replace") for part in argv)
        return text if len(text) <= 120 else text[:117] + "..."
    return "?"


def _holders_from_proc(port: int, proc: Path) -> list[str]:
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port, proc)}
    if not sockets:
        return []
    holders = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in sockets for fd in (pid_dir / "fd").iterdir()):
                holders.append(f"pid {pid_dir.name} ({_command_line(pid_dir)})")
    return holders


def _holders_from_lsof(port: int) -> list[str]:
    lsof = shutil.which("lsof")
    if lsof is None:
        return []
    listing = subprocess.run(
        [lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    holders, pid = [], ""
    for line in listing.splitlines():
        if line.startswith("p"):
            pid = line[1:]
        elif line.startswith("c") and pid:
            holders.append(f"pid {pid} ({line[1:]})")
    return holders


def holders(port: int, proc: Path = Path("/proc")) -> list[str]:
    """The processes listening on a TCP port, as "pid N (command line)"."""
    if proc.is_dir():
        found = _holders_from_proc(port, proc)
        if found:
            return found
    return _holders_from_lsof(port)


def describe_taken(name: str, port: int) -> str:
    held_by = holders(port)
    if held_by:
        return f"{name}: port {port} is already in use by {', '.join(held_by)}"
    return (
        f"{name}: port {port} is already in use (by a process this user cannot see;"
        f" `sudo ss -ltnp 'sport = :{port}'` names it)"
    )


def taken(ports: Iterable[tuple[str, int]]) -> list[str]:
    return [describe_taken(name, port) for name, port in ports if port_accepts(port)]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: ports.py PROCESSES_YAML", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        problems = taken(declared_ports(path.read_text(), str(path)))
    except (OSError, PortsFileError) as error:
        print(f"cannot check the local stack's ports: {error}", file=sys.stderr)
        return 1
    if problems:
        print("cannot start the local stack:\n  " + "\n  ".join(problems), file=sys.stderr)
        print("stop those processes (or a previous `make run`) and run again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
