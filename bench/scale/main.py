"""`make bench-scale`: what the build, the tests, the manifests, Tilt and the local stack
cost with the services of today and with 30, side by side.

In a temporary clone of HEAD it measures every step at the current number of services,
adds generated services (the same ones `make service` makes) until there are 30, and
measures again. The one-service steps should cost the same at both sizes; whole-repo
steps should grow no faster than the number of services. This is a benchmark: it prints
numbers and fails only when a step itself fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from meridian_catalog.catalog import load_catalog
from meridian_catalog.scaffold import create_service

CHANGED_PACKAGE = "current_account"
TARGET_SERVICES = 30
OVERLAYS = ("dev", "staging", "production")


@dataclass(frozen=True)
class Step:
    name: str
    # "one": a one-service change, should not grow; "all": whole-repo work.
    scope: str
    run: Callable[[Path], None]
    # One-service steps are short and noisy on a shared machine: the median of several.
    repeat: int = 1


class StepError(Exception):
    pass


def sh(root: Path, *argv: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        list(argv),
        cwd=root,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-25:])
        raise StepError(f"`{' '.join(argv)}` failed ({result.returncode}) in {root}:\n{tail}")


def touch_service(root: Path) -> None:
    """The one-line change: a new constant in the service's entry point."""
    main = root / "services" / CHANGED_PACKAGE / "main.py"
    main.write_text(main.read_text() + f"\nBENCH_EDIT = {time.monotonic_ns()}\n")


def affected_tests(root: Path) -> None:
    touch_service(root)
    sh(root, "./pants", "--changed-since=HEAD", "--changed-dependents=transitive", "test")


def service_image(root: Path) -> None:
    touch_service(root)
    sh(root, "tools/images/build.sh", "--no-lint", "--no-sbom", f"services/{CHANGED_PACKAGE}:image")


def all_tests(root: Path) -> None:
    sh(root, "./pants", "test", "--force", "::")


def render_overlays(root: Path) -> None:
    for overlay in OVERLAYS:
        sh(root, "kubectl", "kustomize", f"deployments/k8s/overlays/{overlay}")


def tiltfile_load(root: Path) -> None:
    sh(root, "./pants", "test", "--force", "deployments/tests/test_tiltfile.py")


def local_stack_ready(root: Path) -> None:
    sh(root, "make", "run", "RUN_ARGS=--exit-when-ready --ready-timeout=120")


STEPS = (
    Step("affected-only test after a one-line change", "one", affected_tests, repeat=3),
    Step("package that service's image", "one", service_image, repeat=3),
    Step("test everything (--force)", "all", all_tests),
    Step("Tiltfile evaluation (its tests)", "all", tiltfile_load),
    Step("render every overlay", "all", render_overlays),
    Step("make run to all ready", "all", local_stack_ready),
)


def measure(root: Path, steps: Sequence[Step]) -> dict[str, float]:
    timings = {}
    for step in steps:
        print(f"  {step.name} ...", flush=True)
        runs = []
        for _ in range(step.repeat):
            started = time.monotonic()
            step.run(root)
            runs.append(time.monotonic() - started)
            sh(root, "git", "checkout", "--", ".")  # undo the step's edit, if any
        timings[step.name] = statistics.median(runs)
    return timings


def warm_up(root: Path) -> None:
    """Build and test everything once, so each step measures its own work only."""
    sh(root, "make", "build")
    sh(root, "./pants", "test", "::")
    sh(root, "tools/images/build.sh", "--no-lint", "--no-sbom", f"services/{CHANGED_PACKAGE}:image")


def grow_to(root: Path, count: int) -> int:
    existing = len(load_catalog(root))
    for number in range(existing + 1, count + 1):
        create_service(
            root, f"scale-bench-{number:02d}", None, ["database", "redis", "kafka"], lambda _: None
        )
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
       "commit", "-qm", f"{count} services")  # fmt: skip
    return existing


def table(small: int, large: int, rows: dict[str, tuple[str, float, float]]) -> str:
    width = max(len(name) for name in rows)
    lines = [
        f"{'step':<{width}}  {small:>3} services  {large:>3} services   ratio   goal",
        f"{'-' * width}  ------------  ------------  ------  ------",
    ]
    for name, (scope, before, after) in rows.items():
        ratio = after / before if before else float("inf")
        goal = "<= 1.2" if scope == "one" else f"<= {large / small:.1f}"
        lines.append(f"{name:<{width}}  {before:>11.1f}s  {after:>11.1f}s  {ratio:>6.2f}  {goal}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=TARGET_SERVICES)
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args(argv)
    source = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="meridian-scale-"))
    # The local stack's PostgreSQL runs as the postgres user, which must reach its data.
    scratch.chmod(0o755)
    clone = scratch / "meridian"
    try:
        sh(scratch, "git", "clone", "--quiet", str(source), str(clone))
        print(f"clone of HEAD in {clone}; warming caches (build, test, one image)", flush=True)
        warm_up(clone)
        small = len(load_catalog(clone))
        print(f"measuring at {small} services", flush=True)
        before = measure(clone, STEPS)
        grow_to(clone, args.services)
        print(f"measuring at {args.services} services (warming caches first)", flush=True)
        warm_up(clone)
        after = measure(clone, STEPS)
    except StepError as error:
        print(f"bench-scale: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {clone}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    rows = {step.name: (step.scope, before[step.name], after[step.name]) for step in STEPS}
    print()
    print(table(small, args.services, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
