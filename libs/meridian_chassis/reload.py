"""Restart the service in place when its sources change (MERIDIAN_RELOAD=1, dev only).

Tilt's live update syncs changed files into a running container; the runtime image
has no shell for a restart command, so the process watches its own packages, shuts
down gracefully and re-executes itself with the same arguments.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("meridian.reload")

Snapshot = dict[Path, int]


def snapshot(roots: Iterable[Path]) -> Snapshot:
    files: Snapshot = {}
    for root in roots:
        for path in root.rglob("*.py"):
            try:
                files[path] = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
    return files


def package_dirs(packages: Iterable[str]) -> list[Path]:
    dirs = []
    for name in packages:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            dirs.append(Path(location).parent)
    return dirs


def forget_bytecode(sources: Iterable[Path]) -> None:
    """Removes the cached bytecode of changed sources. A timestamp-checked .pyc records
    the source's mtime in whole seconds and its size: an edit within the same second that
    keeps the size would otherwise leave the re-executed process running the old code."""
    for source in sources:
        try:
            Path(importlib.util.cache_from_source(str(source))).unlink(missing_ok=True)
        except (OSError, ValueError, NotImplementedError):
            continue  # a read-only tree, or no cache location: nothing stale to remove


class SourceWatcher:
    """Polls file modification times; calls `on_change` once after changes settle."""

    def __init__(
        self,
        roots: list[Path],
        on_change: Callable[[], None],
        interval: float = 0.1,
        settle: float = 0.15,
    ) -> None:
        self.roots = roots
        self.on_change = on_change
        self.interval = interval
        self.settle = settle
        self.changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="source-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        before = snapshot(self.roots)
        while not self._stop.wait(self.interval):
            now = snapshot(self.roots)
            if now == before:
                continue
            # Wait for a burst of synced files to finish before restarting.
            while not self._stop.wait(self.settle):
                settled = snapshot(self.roots)
                if settled == now:
                    break
                now = settled
            forget_bytecode(
                path for path in before.keys() | now.keys() if before.get(path) != now.get(path)
            )
            log.info("sources changed; restarting", extra={"roots": [str(r) for r in self.roots]})
            self.changed.set()
            self.on_change()
            return


# The listening socket a re-executed process takes over (a file descriptor number).
INHERITED_LISTENER = "MERIDIAN_RELOAD_LISTENER_FD"


def keep_listener(listener: socket.socket) -> int:
    """A second descriptor of the listening socket, taken before the server closes its
    own: the socket keeps listening (connections wait in its backlog) until the
    re-executed process serves them, so nothing is refused during a reload (a refused
    connection ends a `kubectl port-forward`, and Tilt's, with "lost connection to pod")."""
    return os.dup(listener.fileno())


def inherited_listener() -> socket.socket | None:
    """The listening socket the process that re-executed this one kept open, if any."""
    value = os.environ.pop(INHERITED_LISTENER, None)
    if value is None:
        return None
    try:
        listener = socket.socket(fileno=int(value))
    except (ValueError, OSError) as error:
        log.warning("ignoring %s=%r: %s", INHERITED_LISTENER, value, error)
        return None
    os.set_inheritable(listener.fileno(), False)
    return listener


def reexec(kept_listener: int | None = None) -> None:
    """Replace this process with a fresh interpreter running the same command line,
    handing it the kept listening socket."""
    if kept_listener is not None:
        os.set_inheritable(kept_listener, True)
        os.environ[INHERITED_LISTENER] = str(kept_listener)
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - our own command line, re-run
