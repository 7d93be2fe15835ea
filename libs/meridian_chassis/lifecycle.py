"""Where a service is in its life: starting, serving, or draining before exit."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"


class Lifecycle:
    def __init__(self) -> None:
        self.phase = Phase.STARTING

    def started(self) -> None:
        if self.phase is Phase.STARTING:
            self.phase = Phase.SERVING

    def drain(self) -> None:
        self.phase = Phase.DRAINING
