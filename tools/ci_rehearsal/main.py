"""`make ci-rehearsal`: runs the jobs of .github/workflows/ci.yml under act, on this
machine, as GitHub's ubuntu-24.04 runner would for a pull request (a one-line change to
one service) or a push to main, and prints each job's result and time.

    python3 -m tools.ci_rehearsal [--event pull_request|push] [--jobs lint,test]
        [--real-actions DIR] [--work DIR]

The jobs run on the host (`-P ubuntu-24.04=-self-hosted`) in a runner-like environment:
a fresh HOME (no pyenv), the system PATH (no python3.9 on it), a `sudo` that resets the
environment as Ubuntu's does, and only the Pythons setup-python puts in the tool cache.
Every third-party action is a stand-in written from its documented contract
(standins.py); steps that need GitHub's services print "not rehearsed: <reason>"
(contracts.NOT_REHEARSED). The network settings of this machine (CA bundle, pip's
configuration, proxies) pass through, as a runner image would have its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.bootstrap.interpreters import PANTS, SERVICES, PythonNotFoundError, Wanted, find
from tools.ci_rehearsal.actions import ActionsError, local_repositories, pinned_actions
from tools.ci_rehearsal.scenario import EVENTS, GIT, prepare
from tools.ci_rehearsal.workflow import WorkflowError, rehearsal_copy

# The checkout the rehearsal runs from: `./pants run` starts it in the build root. The
# stand-ins run from its sources (standard library only).
REPO_ROOT = Path.cwd()
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a runner image brings of its own and this machine's network needs.
PASSED_THROUGH = (
    "PIP_CERT",
    "PIP_CONFIG_FILE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_DEFAULT_TIMEOUT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "MERIDIAN_INDEX_URL",
    "TERM",
)
# Ubuntu's sudo policy: env_reset and secure_path. A step passes what it needs with
# `sudo env NAME=...`, as on GitHub.
SUDO = """#!/bin/sh
# sudo on GitHub's runner: password-less, environment reset (Meridian's CI rehearsal).
exec env -i "PATH={secure_path}" "HOME={home}" USER=root LOGNAME=root SHELL=/bin/bash "$@"
"""
WORKFLOWS = ("ci.yml", "audit.yml")
MARKER = "MERIDIAN_CI_REHEARSAL_RUN"
LINE = re.compile(r"^\[(?P<job>[^\]]+)\] (?P<text>.*)$")


class RehearsalError(Exception):
    pass


@dataclass
class JobTiming:
    started: float
    ended: float | None = None
    result: str = "running"


@dataclass
class Report:
    jobs: dict[str, JobTiming] = field(default_factory=dict)
    not_rehearsed: list[str] = field(default_factory=list)

    def read(self, line: str, now: float) -> None:
        match = LINE.match(line)
        if not match:
            return
        job, text = match["job"], match["text"]
        timing = self.jobs.setdefault(job, JobTiming(now))
        if "🏁  Job succeeded" in text:
            timing.ended, timing.result = now, "passed"
        elif "🏁  Job failed" in text:
            timing.ended, timing.result = now, "failed"
        notice = re.search(r"\| (not rehearsed: .*)$", text)
        if notice and f"{job}: {notice[1]}" not in self.not_rehearsed:
            self.not_rehearsed.append(f"{job}: {notice[1]}")

    def table(self) -> str:
        rows = [f"{'job':<58} {'result':<8} {'time':>8}"]
        for job, timing in self.jobs.items():
            seconds = (timing.ended or time.monotonic()) - timing.started
            rows.append(f"{job:<58} {timing.result:<8} {seconds:>7.0f}s")
        return "\n".join(rows)

    @property
    def passed(self) -> bool:
        return bool(self.jobs) and all(t.result == "passed" for t in self.jobs.values())


def host_pythons(env: Mapping[str, str]) -> dict[str, list[str]]:
    """What setup-python's stand-in installs from: version -> [full version, prefix]."""
    pythons: dict[str, list[str]] = {}
    for wanted in (PANTS, SERVICES):
        pythons[wanted.version] = _describe(wanted, find(wanted, env))
    return pythons


def _describe(wanted: Wanted, executable: str) -> list[str]:
    code = "import platform, sys; print(platform.python_version()); print(sys.base_prefix)"
    out = subprocess.run([executable, "-c", code], capture_output=True, text=True, check=True)
    full, prefix = out.stdout.split()
    if not Path(prefix, "bin", wanted.executable).exists():
        raise RehearsalError(f"{executable}: no bin/{wanted.executable} under {prefix}")
    return [full, prefix]


def tool_bin(lock: str) -> Path:
    out = subprocess.run(
        [str(REPO_ROOT / "tools/images/tools.sh"), lock],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RehearsalError(f"installing {lock or 'the image tools'} failed:\n{out.stderr}")
    return Path(out.stdout.strip())


def engine_env() -> dict[str, str]:
    """GitHub's runner has a Docker daemon; here tools/images/engine.sh finds or starts
    one (the same as `make docker`) and the jobs get its settings."""
    out = subprocess.run(
        [str(REPO_ROOT / "tools/images/engine.sh"), "env"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RehearsalError(f"no container engine for the build job:\n{out.stderr}")
    settings = {}
    for line in out.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            settings[name] = value
    return settings


def runner_env(work: Path, extra: Mapping[str, str]) -> dict[str, str]:
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    bin_dir = work / "runner-bin"
    bin_dir.mkdir(exist_ok=True)
    sudo = bin_dir / "sudo"
    sudo.write_text(SUDO.format(secure_path=SYSTEM_PATH, home=home))
    sudo.chmod(0o755)
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update({"HOME": str(home), "PATH": f"{bin_dir}:{SYSTEM_PATH}", "LANG": "C.UTF-8"})
    # syft asks its vendor for a newer release, unreachable here (a logged error only).
    env["SYFT_CHECK_FOR_APP_UPDATE"] = "false"
    env.update(extra)
    return env


def stop_leftovers(work: Path, marker: str) -> list[int]:
    """Daemons the jobs started (pantsd above all) outlive act's cleanup on a host
    runner. They are the processes whose working directory is inside a job's workspace
    (under act's directory of this rehearsal), or that carry its marker in their
    environment (pantsd rewrites its own, so the directory is what finds it)."""
    stopped = []
    needle = f"{MARKER}={marker}".encode()
    inside = str(work / "act") + "/"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd").removesuffix(" (deleted)")
            marked = needle in (proc / "environ").read_bytes().split(b"\0")
            if marked or (cwd + "/").startswith(inside):
                os.kill(int(proc.name), signal.SIGTERM)
                stopped.append(int(proc.name))
        except OSError:
            continue
    return stopped


def run_act(command: Sequence[str], env: Mapping[str, str], log: Path) -> Report:
    report = Report()
    with open(log, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        for line in process.stdout or ():
            now = time.monotonic()
            log_file.write(line)
            sys.stdout.write(line)
            report.read(line.rstrip("\n"), now)
        process.wait()
    if process.returncode and report.passed:
        raise RehearsalError(f"act exited {process.returncode}; see {log}")
    return report


def rehearse(args: argparse.Namespace) -> int:
    if not (REPO_ROOT / "tools/ci_rehearsal/standins.py").is_file():
        raise RehearsalError(f"run this from the repository's root, not {REPO_ROOT}")
    work = Path(args.work or REPO_ROOT / "dist/ci-rehearsal" / args.event).resolve()
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        [GIT, "rev-parse", args.commit], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    started = time.monotonic()
    act = tool_bin("3rdparty/tools/ci-rehearsal.txt") / "act"
    image_tools = tool_bin("")
    pythons = host_pythons(os.environ)
    scenario = prepare(REPO_ROOT, commit, work, args.event)
    workflows = scenario.clone / ".github/workflows"
    jobs = [job for job in args.jobs.split(",") if job]
    for name in WORKFLOWS:
        path = workflows / name
        # The reusable audit workflow runs whole when ci.yml calls it.
        selection = jobs if name == "ci.yml" else []
        path.write_text(rehearsal_copy(path.read_text(), name, args.event, selection))
    sources = sorted((scenario.clone / ".github").rglob("*.yml"))
    mappings = local_repositories(
        pinned_actions(sources), work, REPO_ROOT, sys.executable, args.real_actions
    )
    marker = uuid.uuid4().hex
    extra = {
        MARKER: marker,
        "REHEARSAL_ORIGIN": str(scenario.origin),
        "REHEARSAL_STATE": str(work / "state"),
        "REHEARSAL_CACHE": str(args.cache or work / "actions-cache"),
        "REHEARSAL_PYTHONS": json.dumps(pythons),
        "REHEARSAL_TOOLS": str(image_tools),
    }
    if not jobs or "build" in jobs:
        extra.update(engine_env())
    extra.update(dict(item.split("=", 1) for item in args.env))
    shutil.rmtree(work / "state", ignore_errors=True)
    env = runner_env(work, extra)
    command = [
        str(act),
        args.event,
        "-C",
        str(scenario.clone),
        "-W",
        str(workflows / "ci.yml"),
        "-e",
        str(scenario.event_file),
        "-P",
        "ubuntu-24.04=-self-hosted",
        "--no-skip-checkout",
        "--no-cache-server",
        "--action-offline-mode",
        "--container-daemon-socket",
        "-",
        "--concurrent-jobs",
        str(args.concurrent_jobs),
        "--action-cache-path",
        str(work / "act"),
    ]
    for mapping in mappings:
        command += ["--local-repository", mapping]
    print(f"ci-rehearsal: {args.event} at {scenario.sha[:12]} under act in {work}")
    print("ci-rehearsal: $ " + shlex.join(command), flush=True)
    try:
        report = run_act(command, env, work / "act.log")
    finally:
        stopped = stop_leftovers(work, marker)
        if stopped:
            print(f"ci-rehearsal: stopped the jobs' leftover processes {stopped}")
    total = time.monotonic() - started
    print(f"\n::: ci-rehearsal ({args.event}): {total:.0f}s in all, log {work / 'act.log'}")
    print(report.table())
    for line in report.not_rehearsed:
        print(f"  {line}")
    (work / "report.json").write_text(
        json.dumps(
            {
                "event": args.event,
                "commit": scenario.sha,
                "seconds": round(total),
                "python": platform.python_version(),
                "jobs": {
                    job: {"result": t.result, "seconds": round((t.ended or t.started) - t.started)}
                    for job, t in report.jobs.items()
                },
                "not_rehearsed": report.not_rehearsed,
            },
            indent=2,
        )
    )
    return 0 if report.passed else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make ci-rehearsal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--event", choices=EVENTS, default="pull_request")
    parser.add_argument("--jobs", default="", help="comma-separated job ids (default: all)")
    parser.add_argument("--commit", default="HEAD", help="the commit rehearsed (default: HEAD)")
    parser.add_argument("--work", default="", help="default: dist/ci-rehearsal/<event>")
    parser.add_argument(
        "--real-actions",
        type=Path,
        default=None,
        help="DIR/<owner>/<repo>: checkouts of the real actions at their pins",
    )
    # Kept between the rehearsals of one work directory, not shared across clones: what a
    # job caches under HOME (Pants' virtualenv, PEX venvs) names that HOME in its scripts,
    # and each rehearsal has a HOME of its own (GitHub's is always /home/runner).
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="actions/cache's store (default: <work>/actions-cache, kept between rehearsals)",
    )
    # One job at a time: on a host runner the jobs share one HOME, and a job's cache
    # save must not copy another job's half-written files (GitHub gives each its own VM).
    parser.add_argument("--concurrent-jobs", type=int, default=1)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="more environment for the runner (e.g. DOCKER_HOST)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    try:
        return rehearse(args)
    except (RehearsalError, ActionsError, WorkflowError, PythonNotFoundError) as error:
        print(f"ci-rehearsal: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(
            f"ci-rehearsal: {shlex.join(error.cmd)} failed: {error.stderr or ''}", file=sys.stderr
        )
        return 1
