from __future__ import annotations

import socket
from pathlib import Path

from bench.coldstart.main import (
    MILESTONES,
    Timeline,
    empty_cache_environment,
    ports_in_use,
    stack_ports,
    stack_process_count,
)

STACK = """processes:
  - name: cockroachdb
    cmd: [python3, backing.pex, postgres, --port, "26257"]
    port: 26257
  - name: ledger
    port: "18081"
    ready_path: /health/ready
"""


def test_reads_the_stack_ports() -> None:
    assert stack_ports(STACK) == [26257, 18081]
    assert stack_process_count(STACK) == 2


def test_reads_the_repository_stack() -> None:
    text = Path("deployments/local/processes.yaml").read_text()
    ports = stack_ports(text)
    assert {26257, 6379, 9092} <= set(ports)
    assert stack_process_count(text) == len(ports)


def test_finds_ports_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = int(listener.getsockname()[1])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = int(probe.getsockname()[1])
        assert ports_in_use([taken, free]) == [taken]


def test_moves_every_cache_into_scratch(tmp_path: Path) -> None:
    base = {
        "HOME": "/home/dev",
        "PATH": "/usr/bin",
        "PANTS_PYTHON": "/py39",
        "MERIDIAN_PYTHON": "/py311",
    }
    env = empty_cache_environment(tmp_path, base)
    for variable in (
        "HOME",
        "XDG_CACHE_HOME",
        "MERIDIAN_PANTS_CACHE",
        "PANTS_LOCAL_STORE_DIR",
        "PANTS_NAMED_CACHES_DIR",
        "PEX_ROOT",
        "PIP_CACHE_DIR",
        "UV_CACHE_DIR",
    ):
        assert env[variable].startswith(str(tmp_path)), variable
    # The machine's own PATH first: `python3` is what it is there.
    assert env["PATH"] == "/usr/bin:/:/"
    assert env["PYENV_ROOT"] == "/home/dev/.pyenv"
    assert (tmp_path / "home").is_dir()


def test_timeline_reports_each_phase_and_the_running_total() -> None:
    timeline = Timeline()
    with timeline.phase("git clone"):
        pass
    with timeline.phase("make build"):
        pass
    report = timeline.report().splitlines()
    assert report[0].split() == ["phase", "seconds", "since", "clone"]
    assert [line.split()[0] for line in report[1:]] == ["git", "make"]
    assert timeline.phases[1][2] >= timeline.phases[0][2]


def test_splits_the_last_phase_into_its_steps() -> None:
    timeline = Timeline()
    timeline.phases = [("git clone", 1.0, 1.5), ("make run", 20.0, 21.5)]
    timeline.split([("install", 4.0), ("start", 12.0), ("build", 16.0), ("stack", 20.0)])
    assert timeline.phases[2:] == [
        ("  install", 4.0, 5.5),
        ("  start", 8.0, 13.5),
        ("  build", 4.0, 17.5),
        ("  stack", 4.0, 21.5),
    ]


def test_the_last_phase_can_end_before_its_block_did() -> None:
    timeline = Timeline()
    timeline.started = 100.0
    timeline.phases = [("git clone", 1.0, 1.0), ("make run", 30.0, 31.0)]
    timeline.end_last_phase_at(127.0)
    assert timeline.phases[-1] == ("make run", 26.0, 27.0)


def test_a_step_out_of_order_is_left_out() -> None:
    timeline = Timeline()
    timeline.phases = [("make run", 10.0, 10.0)]
    timeline.split([("install", 4.0), ("start", 3.0), ("stack", 10.0)])
    assert [name for name, _, _ in timeline.phases[1:]] == ["  install", "  stack"]


def test_milestones_match_what_make_run_prints() -> None:
    assert MILESTONES["pants started"].search("07:41:43.39 [INFO] Scheduler initialized.")
    assert MILESTONES["built"].search(
        "07:36:52.21 [INFO] Wrote dist/libs.meridian_devstack/backing.pex"
    )
    assert not MILESTONES["built"].search("    cockroachdb | LOG:  database system is ready")
