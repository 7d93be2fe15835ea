"""bench.py's own parsing; the measurements run against real images (`make bench-images`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.images import bench

LOG = """\
10:00:01.00 [INFO] Starting: Building services.x/image-srcs.pex
10:00:01.50 [INFO] Completed: Building services.x/image-srcs.pex
10:00:02.00 [INFO] Starting: Building docker image meridian/x:1 +1 additional tag.
10:00:03.25 [INFO] Completed: Building docker image meridian/x:1 +1 additional tag.
10:00:04.00 [INFO] Starting: Building services.x/image-srcs.pex
10:00:04.75 [INFO] Completed: Building services.x/image-srcs.pex
"""


def test_the_last_matching_pants_step_is_timed(tmp_path: Path) -> None:
    log = tmp_path / "pants.log"
    log.write_text(LOG)
    assert bench.step_seconds(log, r"image-srcs\.pex") == "0.75"
    assert bench.step_seconds(log, "docker image meridian/x:") == "1.25"
    assert bench.step_seconds(log, "never ran") == "n/a"


def test_an_edit_is_reverted_whatever_happens(tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text("print(1)\n")
    try:
        with bench.edited(source):
            assert source.read_text().startswith("print(1)\n_BENCH_MARKER = ")
            raise RuntimeError("the build failed")
    except RuntimeError:
        pass
    assert source.read_text() == "print(1)\n"


def test_the_script_starts_the_benchmark() -> None:
    shown = subprocess.run(
        ["/bin/bash", "bench/images/bench.sh", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "sizes, rebuild time, layer reuse, commit independence" in shown.stdout
