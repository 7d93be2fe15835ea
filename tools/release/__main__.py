"""python3 -m tools.release COMMAND ...: Meridian's release steps (see --help)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.release import (
    affected,
    catalog,
    coverage,
    deploy,
    e2e,
    manifest,
    promote,
    record,
    settings,
)
from tools.release.errors import ReleaseError
from tools.release.github import GitHub
from tools.release.kube import Deadline, Kubectl

REPO = Path(__file__).resolve().parents[2]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def _github_output(values: dict[str, str]) -> None:
    """Step outputs for GitHub Actions (only when running there)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as output:
            for key, value in values.items():
                output.write(f"{key}={value}\n")


def cmd_affected(args: argparse.Namespace) -> None:
    result = affected.compute(REPO, args.base or None)
    for reason in result.reasons:
        print(f"affected: everything, because {reason}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(result.to_json() + "\n")
    if args.pants_args:
        if result.base is not None and not result.changed_files:
            # Nothing to hand Pants: say so instead of a silent run that tests nothing.
            print(
                f"nothing changed since {result.base} (committed, staged, unstaged or"
                " untracked): nothing to test. `make test-changed BASE=HEAD~1` tests the"
                " last commit, `make test` everything.",
                file=sys.stderr,
            )
            return
        print(" ".join(result.pants_args))
    else:
        print(result.to_json())
    _github_output(
        {
            "everything": str(result.everything).lower(),
            "pants-args": " ".join(result.pants_args),
            "services": " ".join(result.services),
            "image-targets": " ".join(
                s.image_target for s in catalog.services(REPO) if s.name in result.services
            ),
        }
    )


def cmd_coverage(_args: argparse.Namespace) -> None:
    found = coverage.check(REPO)
    print(
        f"{len(found.global_files)} global inputs, {len(found.unowned)} files no target owns "
        f"(a change to either affects everything), {len(found.owned)} reach a test, an "
        f"artifact or a dependent; {len(found.missed)} reach nothing"
    )
    for path, owners in found.missed:
        print(f"  {path}: owned by {owners}, which nothing depends on")
    if found.missed:
        raise ReleaseError(
            "a change to the files above would affect nothing: add them to GLOBAL_INPUTS in "
            "tools/release/affected.py or declare what reads them as a dependent"
        )
    for image in found.images_off_pipeline:
        print(f"  {image} does not depend on {coverage.IMAGE_PIPELINE}")
    if found.images_off_pipeline:
        raise ReleaseError(
            "a change to the image scripts would not rebuild the images above: make them "
            f"depend on {coverage.IMAGE_PIPELINE} (the base image does; service images start "
            "from it)"
        )
    for path, module in found.on_instruments:
        print(f"  {path} imports {module}")
    if found.on_instruments:
        raise ReleaseError(
            f"the files above import benchmarks or demos ({coverage.INSTRUMENTS}/): move what "
            "they share into the product (libs/, tools/) and import it from there"
        )


def cmd_previous(args: argparse.Namespace) -> None:
    running = record.running(GitHub(args.repository), args.environment)
    if running is None:
        print(f"no {args.environment} deployment record: everything is built", file=sys.stderr)
        _github_output({"commit": ""})
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(running.text)
    print(running.manifest.commit)
    _github_output({"commit": running.manifest.commit})


def cmd_record(args: argparse.Namespace) -> None:
    github = GitHub(args.repository)
    if args.action == "start":
        text = Path(args.manifest).read_text()
        started = record.start(
            github, args.environment, args.commit, text, args.run_id, args.run_attempt
        )
        print(f"deployment {started.deployment_id}: manifest {started.sha256}")
        _github_output({"id": str(started.deployment_id), "sha256": started.sha256})
        return
    text = Path(args.manifest).read_text()
    done = record.Record(args.id, text, record.sha256_of(text), args.run_id)
    record.finish(github, done, args.state)
    print(f"deployment {args.id}: {args.state}")


def _built(path: Path) -> dict[str, str]:
    built: dict[str, str] = {}
    if not path.exists():
        return built
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, image = line.strip().partition("=")
        if not separator:
            raise ReleaseError(
                f"{path}:{number}: {line!r} is not <service>=<repository>@sha256:<digest>"
            )
        built[name] = image
    return built


def cmd_manifest(args: argparse.Namespace) -> None:
    previous = manifest.load(Path(args.previous)) if args.previous else None
    result = manifest.merge(
        args.commit, _built(Path(args.built)), previous, affected.all_services(REPO)
    )
    result.write(Path(args.out))
    print(result.to_json(), end="")


def cmd_deploy(args: argparse.Namespace) -> None:
    settings = deploy.DeploySettings(
        environment=args.environment,
        repo=REPO,
        manifest=manifest.load(Path(args.manifest)),
        deadline_seconds=args.deadline,
        rollback_seconds=args.rollback_timeout,
        state_file=Path(args.state),
        release_version=args.release_version or None,
        smoke_seconds=args.smoke_timeout,
        allow_rollback=args.allow_rollback,
    )
    deploy.deploy(settings, Kubectl(args.kubectl))


def cmd_rollback(args: argparse.Namespace) -> None:
    deploy.rollback_from_state(Path(args.state), Kubectl(args.kubectl), args.rollback_timeout)


def cmd_verify_release(args: argparse.Namespace) -> None:
    found = promote.verify(REPO, GitHub(args.repository), args.version, args.commit, args.main_ref)
    # The exact bytes staging deployed, so the production job can check the hash.
    Path(args.out).write_text(found.text)
    print(f"staging deployment {found.deployment_id}: manifest {found.sha256}", file=sys.stderr)
    print(found.text, end="")
    _github_output({"manifest-sha256": found.sha256})


def cmd_wait_artifact(args: argparse.Namespace) -> None:
    present = GitHub(args.repository).wait_for_artifact(
        args.run_id, args.attempt, args.artifact, args.job, args.timeout
    )
    print(f"{args.artifact}: {'present' if present else f'{args.job} made none'}")
    _github_output({"present": str(present).lower()})


def cmd_apply_settings(args: argparse.Namespace) -> None:
    github = GitHub(args.repository, args.gh)
    for line in settings.apply(github, REPO / ".github/rulesets", REPO / ".github/environments"):
        print(line)


def cmd_e2e(args: argparse.Namespace) -> None:
    e2e.write(REPO, Path(args.out), args.services.split(), affected.all_services(REPO), args.tag)


def cmd_e2e_check(args: argparse.Namespace) -> None:
    deadline = Deadline(args.timeout, "e2e-check")
    problems = e2e.check_services(
        Kubectl(args.kubectl), args.namespace, args.services.split(), deadline
    )
    if problems:
        raise ReleaseError("; ".join(problems))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python3 -m tools.release", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    changed = commands.add_parser("affected", help="what a change since --base affects")
    changed.add_argument(
        "--base", required=True, help="commit to compare with; '' means everything"
    )
    changed.add_argument("--json", help="also write the result to this file")
    changed.add_argument(
        "--pants-args",
        action="store_true",
        help="print only the Pants arguments; nothing (and why, on stderr) when nothing changed",
    )
    changed.set_defaults(run=cmd_affected)

    covered = commands.add_parser(
        "affected-coverage", help="fail if a tracked file's change would affect nothing"
    )
    covered.set_defaults(run=cmd_coverage)

    previous = commands.add_parser(
        "previous-manifest", help="manifest of what the environment runs (its deployment record)"
    )
    previous.add_argument("--repository", required=True, help="owner/name on GitHub")
    previous.add_argument("--environment", default="staging")
    previous.add_argument("--out", required=True, help="where to write the manifest")
    previous.set_defaults(run=cmd_previous)

    merged = commands.add_parser("manifest", help="this commit's release manifest")
    merged.add_argument("--commit", required=True, help="40-hex commit of this build")
    merged.add_argument(
        "--built", required=True, help="file of <service>=<repository>@sha256:<digest> lines"
    )
    merged.add_argument("--previous", help="manifest of the last successful staging deploy")
    merged.add_argument("--out", required=True)
    merged.set_defaults(run=cmd_manifest)

    rollout = commands.add_parser("deploy", help="deploy a manifest; roll back on any failure")
    rollout.add_argument(
        "--environment", required=True, help="overlay under deployments/k8s/overlays"
    )
    rollout.add_argument("--manifest", required=True)
    rollout.add_argument("--state", required=True, help="file recording what a rollback restores")
    rollout.add_argument(
        "--deadline", type=_seconds, required=True, help="seconds for apply, rollouts and checks"
    )
    rollout.add_argument(
        "--rollback-timeout", type=_seconds, required=True, help="seconds for a rollback"
    )
    rollout.add_argument(
        "--smoke-timeout", type=_seconds, default=120.0, help="seconds per /version check"
    )
    rollout.add_argument("--release-version", default="", help="X.Y.Z, recorded on the Deployments")
    rollout.add_argument(
        "--allow-rollback",
        action="store_true",
        help="deploy even a commit older than (or beside) the one the environment runs",
    )
    rollout.add_argument("--kubectl", default="kubectl")
    rollout.set_defaults(run=cmd_deploy)

    back = commands.add_parser("rollback", help="finish the rollback of a killed deploy")
    back.add_argument("--state", required=True)
    back.add_argument("--rollback-timeout", type=_seconds, required=True)
    back.add_argument("--kubectl", default="kubectl")
    back.set_defaults(run=cmd_rollback)

    _release_commands(commands)
    return top


def _release_commands(commands: Any) -> None:
    recorded = commands.add_parser(
        "record-deployment", help="GitHub's record of deploying a manifest (record.py)"
    )
    recorded.add_argument("action", choices=["start", "finish"])
    recorded.add_argument("--repository", required=True, help="owner/name on GitHub")
    recorded.add_argument("--manifest", required=True, help="the manifest file deployed")
    recorded.add_argument("--run-id", type=int, required=True, help="GITHUB_RUN_ID")
    recorded.add_argument("--environment", default="staging", help="start: the environment")
    recorded.add_argument("--commit", default="", help="start: the 40-hex commit deployed")
    recorded.add_argument("--run-attempt", type=int, default=1, help="start: GITHUB_RUN_ATTEMPT")
    recorded.add_argument("--id", type=int, default=0, help="finish: the record's deployment id")
    recorded.add_argument(
        "--state", default="", help="finish: success or failure (how the deploy ended)"
    )
    recorded.set_defaults(run=cmd_record)

    release = commands.add_parser("verify-release", help="check a release and fetch its manifest")
    release.add_argument("--version", required=True, help="X.Y.Z (the tag is vX.Y.Z)")
    release.add_argument("--commit", required=True, help="40-hex commit the tag points at")
    release.add_argument("--repository", required=True, help="owner/name on GitHub")
    release.add_argument("--main-ref", default="origin/main")
    release.add_argument("--out", required=True)
    release.set_defaults(run=cmd_verify_release)

    wait = commands.add_parser("wait-artifact", help="wait for another job's artifact in this run")
    wait.add_argument("--repository", required=True, help="owner/name on GitHub")
    wait.add_argument("--run-id", type=int, required=True)
    wait.add_argument("--attempt", type=int, required=True)
    wait.add_argument("--artifact", required=True)
    wait.add_argument("--job", required=True, help="name of the job that uploads it")
    wait.add_argument("--timeout", type=_seconds, required=True)
    wait.set_defaults(run=cmd_wait_artifact)

    apply = commands.add_parser(
        "apply-settings", help="apply .github/rulesets and .github/environments to GitHub"
    )
    apply.add_argument("--repository", required=True, help="owner/name on GitHub")
    apply.add_argument("--gh", default="gh", help="the GitHub CLI")
    apply.set_defaults(run=cmd_apply_settings)

    cluster = commands.add_parser("e2e-kustomization", help="the e2e cluster's kustomization")
    cluster.add_argument("--services", required=True, help="space-separated affected services")
    cluster.add_argument("--tag", required=True, help="tag of the images CI built")
    cluster.add_argument("--out", required=True, help="directory to write kustomization.yaml into")
    cluster.set_defaults(run=cmd_e2e)

    answers = commands.add_parser(
        "e2e-check", help="a real request through each service of the e2e cluster"
    )
    answers.add_argument("--namespace", required=True, help="where the services run")
    answers.add_argument("--services", required=True, help="space-separated services to ask")
    answers.add_argument("--timeout", type=_seconds, default=120.0, help="seconds in all")
    answers.add_argument("--kubectl", default="kubectl", help="the kubectl to use")
    answers.set_defaults(run=cmd_e2e_check)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ReleaseError as error:
        # GitHub Actions shows ::error:: lines as annotations on the run.
        prefix = "::error::" if os.environ.get("GITHUB_ACTIONS") == "true" else "release: "
        print(f"{prefix}{args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
