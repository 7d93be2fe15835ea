"""Deploy a release manifest to one environment: it completes, or it is rolled back.

1. Checks its inputs (overlay, manifest covering exactly the repository's services)
   before touching the cluster, then takes the state file's lock (lock.py).
2. Renders a temporary kustomization over the overlay (render.py), reads what of it the
   cluster already has, and refuses a release that would move the environment back
   (order.py). Records those objects whole in the state file (snapshot.py).
3. `kubectl apply` (no --prune: while it can roll back, earlier releases' content-hashed
   ConfigMaps must stay), then records which objects the apply created.
4. Watches the rollouts the apply started (rollout.py): a pod that cannot pull its
   image, crash-loops or fails its startup probe fails the deploy within seconds of
   the kubelet saying so, naming the pod, the reason and the newest warning event.
5. Checks every service: every pod of its current ReplicaSet is ready and runs the
   manifest's digest (the pods' imageID), and through a port-forward its /health/ready
   answers and /version reports the manifest's revision.
6. Any failure, the deadline passing, SIGTERM or SIGINT: every recorded object that
   changed is replaced by its recorded content (pod templates, ConfigMap references,
   annotations, Services, policies), what the deploy created is deleted, and the
   restored Deployments are awaited. A later step (`rollback --state`) does the same
   if this process is killed outright; it waits for this one's lock first.
7. Once it has succeeded: deletes what the release left behind (prune.py), a removed
   service's objects and ConfigMaps no ReplicaSet can return to. A failure there is
   reported, not rolled back: the release is running and checked.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tools.release import lock, order, prune, render, rollout
from tools.release.affected import all_services
from tools.release.buildinfo import RELEASE_TAG
from tools.release.errors import ReleaseError
from tools.release.kube import Deadline, DeploymentRef, Kubectl, fetch_version, revision_of
from tools.release.manifest import Manifest
from tools.release.prune import NEVER_PRUNED, ref_of
from tools.release.snapshot import DeployState, differs, restorable


class SignalReceivedError(Exception):
    """SIGTERM or SIGINT arrived (a cancelled or timed-out job)."""


@dataclass(frozen=True)
class DeploySettings:
    environment: str
    repo: Path
    manifest: Manifest
    deadline_seconds: float
    rollback_seconds: float
    state_file: Path
    release_version: str | None = None
    smoke_seconds: float = 120
    allow_rollback: bool = False


def say(message: str) -> None:
    print(f"deploy: {message}", file=sys.stderr, flush=True)


def overlay_of(repo: Path, environment: str) -> Path:
    overlay = repo / "deployments/k8s/overlays" / environment
    if not (overlay / "kustomization.yaml").is_file():
        known = sorted(p.name for p in (repo / "deployments/k8s/overlays").glob("*") if p.is_dir())
        raise ReleaseError(f"--environment {environment!r}: no overlay {overlay}; one of {known}")
    return overlay


def check_inputs(settings: DeploySettings) -> Path:
    overlay = overlay_of(settings.repo, settings.environment)
    services = all_services(settings.repo)
    listed = sorted(settings.manifest.services)
    if listed != services:
        raise ReleaseError(
            f"the release manifest lists {listed}, the repository's services are {services}: "
            "a manifest must pin every service"
        )
    if settings.release_version and not RELEASE_TAG.match(f"v{settings.release_version}"):
        raise ReleaseError(
            f"--release-version {settings.release_version!r} is not X.Y.Z or X.Y.Z-pre (no 'v')"
        )
    if settings.deadline_seconds <= 0 or settings.rollback_seconds <= 0:
        raise ReleaseError("--deadline and --rollback-timeout must be positive numbers of seconds")
    return overlay


@contextmanager
def _on_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGTERM and SIGINT go to `handler` inside the block; the previous handlers after."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)


def signals_raise() -> AbstractContextManager[None]:
    """SIGTERM and SIGINT raise SignalReceivedError inside the block."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise SignalReceivedError(signal.Signals(signum).name)

    return _on_signals(interrupt)


def signals_deferred() -> AbstractContextManager[None]:
    """A rollback is not itself interrupted: later signals are only reported."""

    def note(signum: int, _frame: FrameType | None) -> None:
        say(f"{signal.Signals(signum).name} received while rolling back; finishing the rollback")

    return _on_signals(note)


def deployments_of(objects: list[dict[str, Any]]) -> dict[DeploymentRef, dict[str, Any]]:
    return {
        DeploymentRef(item["metadata"]["namespace"], item["metadata"]["name"]): item
        for item in objects
        if item.get("kind") == "Deployment"
    }


def rollback(kubectl: Kubectl, state: DeployState, state_file: Path, seconds: float) -> list[str]:
    """Restores the recorded objects and deletes what the deploy created; the problems
    left (empty when the environment is back where it was)."""
    deadline = Deadline(seconds, "rollback")
    problems: list[str] = []
    with signals_deferred():
        try:
            live = {ref_of(item): item for item in kubectl.live(state.names(), deadline)}
            for before in state.before:
                ref = ref_of(before)
                if ref not in live or differs(live[ref], before):
                    say(f"restoring {ref}")
                    kubectl.replace(restorable(before), deadline)
            # A new Deployment goes before the new configuration its pods name.
            for ref in sorted(state.created, key=lambda ref: (ref.kind != "Deployment", ref)):
                if ref.kind in NEVER_PRUNED:
                    continue
                say(f"deleting {ref}: the failed release created it")
                kubectl.delete(ref.kind, ref.namespace, ref.name, deadline)
            restored = sorted(deployments_of(state.before), key=str)
            problems += rollout.wait(kubectl, restored, deadline, say)
        except ReleaseError as error:
            problems.append(str(error))
    state.complete = not problems
    state.save(state_file)
    return problems


def smoke_check(
    kubectl: Kubectl,
    settings: DeploySettings,
    released: list[dict[str, Any]],
    deadline: Deadline,
) -> list[str]:
    """`released`: the release's objects as the server has them after the rollouts."""
    deployments = deployments_of(released)
    services = {
        (item["metadata"]["namespace"], item["metadata"]["name"]): item
        for item in released
        if item.get("kind") == "Service"
    }
    workloads = rollout.objects_of(kubectl, (ref.namespace for ref in deployments), deadline)
    problems = []
    for name, entry in sorted(settings.manifest.services.items()):
        matches = [(ref, body) for ref, body in deployments.items() if ref.name == name]
        if len(matches) != 1:
            problems.append(f"{name}: expected one Deployment named {name}, found {len(matches)}")
            continue
        ref, body = matches[0]
        wrong = rollout.identity_problems(body, workloads[ref.namespace], entry.digest)
        if wrong:
            problems += wrong
            continue
        say(f"{ref}: every pod ready, running {entry.digest}")
        service = services.get((ref.namespace, name))
        if service is None:
            problems.append(f"{ref}: no Service {name} in {ref.namespace}")
            continue
        port = int(service["spec"]["ports"][0]["port"])
        problems += check_version(
            kubectl, ref, port, entry.revision, deadline, settings.smoke_seconds
        )
    return problems


def check_version(
    kubectl: Kubectl,
    ref: DeploymentRef,
    port: int,
    revision: str,
    deadline: Deadline,
    seconds: float,
) -> list[str]:
    """/version must report revision within `seconds` (pods of the old ReplicaSet may still
    answer for a moment while they terminate)."""
    until = time.monotonic() + min(seconds, deadline.left())
    last = "no answer"
    while True:
        with kubectl.port_forward(ref.namespace, ref.name, port, deadline) as local_port:
            body, error = fetch_version(local_port, timeout=min(10, deadline.left()))
        if error is None:
            reported = body.get("revision") if isinstance(body, dict) else None
            if reported == revision:
                say(f"{ref}: /health/ready OK, /version revision {reported}")
                return []
            last = f"/version reports revision {reported!r}, expected {revision!r}"
        else:
            last = error
        if time.monotonic() + 2 >= until:
            return [f"{ref}: {last}"]
        time.sleep(2)


def deploy(settings: DeploySettings, kubectl: Kubectl) -> None:
    """Deploys the manifest, or rolls back and raises ReleaseError saying why."""
    overlay = check_inputs(settings)
    deadline = Deadline(settings.deadline_seconds, f"deploy to {settings.environment}")
    with lock.held(settings.state_file, deadline.left(), "deploy"):
        _deploy(settings, overlay, kubectl, deadline)


def _deploy(settings: DeploySettings, overlay: Path, kubectl: Kubectl, deadline: Deadline) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"meridian-deploy-{settings.environment}-"))
    render.write(overlay, workdir / "release", settings.manifest, settings.release_version)
    rendered = workdir / "rendered.yaml"
    rendered.write_text(kubectl.kustomize(workdir / "release", deadline))
    say(f"rendered {overlay} pinned to release {settings.manifest.commit} into {rendered}")
    existing = kubectl.live_objects(rendered, deadline)
    order.check(
        settings.repo,
        settings.environment,
        deployments_of(existing).values(),
        settings.manifest.commit,
        settings.release_version,
        settings.allow_rollback,
    )
    state = DeployState(settings.environment, existing)
    state.save(settings.state_file)
    failure: str | None = None
    checked: list[dict[str, Any]] = []  # the rendered objects as the server has them
    try:
        with signals_raise():
            kubectl.apply(rendered, deadline)
            live = kubectl.live_objects(rendered, deadline)
            state.created = state.created_by(live)
            state.save(settings.state_file)
            before = {ref: revision_of(body) for ref, body in deployments_of(existing).items()}
            started = [
                ref
                for ref, body in deployments_of(live).items()
                if revision_of(body) != before.get(ref)
            ]
            say(f"rollouts started: {[str(ref) for ref in started] or 'none (nothing changed)'}")
            problems = rollout.wait(kubectl, started, deadline, say)
            if not problems:
                checked = kubectl.live_objects(rendered, deadline)
                problems = smoke_check(kubectl, settings, checked, deadline)
            if problems:
                failure = "; ".join(problems)
    except SignalReceivedError as signal_name:
        failure = f"{signal_name} received"
    except ReleaseError as error:
        failure = str(error)
    if failure is None:
        state.complete = True
        state.save(settings.state_file)
        say(f"{settings.environment} runs release {settings.manifest.commit}")
        remove_leftovers(kubectl, checked, deadline)
        return
    say(f"FAILED: {failure}; rolling back")
    left = rollback(kubectl, state, settings.state_file, settings.rollback_seconds)
    if left:
        raise ReleaseError(
            f"deploy failed ({failure}) and the rollback left problems: {'; '.join(left)}"
        )
    raise ReleaseError(f"deploy failed ({failure}); rolled back to what ran before")


def remove_leftovers(kubectl: Kubectl, released: list[dict[str, Any]], deadline: Deadline) -> None:
    """`released`: the release's objects as the server has them after the deploy."""
    try:
        live: list[dict[str, Any]] = []
        replica_sets: list[dict[str, Any]] = []
        for namespace, kinds in sorted(prune.prunable_kinds(released).items()):
            live += kubectl.list_objects(namespace, sorted(kinds), deadline, prune.selector())
            replica_sets += kubectl.list_objects(namespace, ["ReplicaSet"], deadline)
        leftovers = prune.leftovers(released, live, replica_sets)
        for ref in leftovers:
            say(f"removing {ref}: no longer in the release")
            kubectl.delete(ref.kind, ref.namespace, ref.name, deadline)
        if not leftovers:
            say("nothing left behind to remove")
    except (ReleaseError, OSError, ValueError) as error:
        say(f"WARNING: the release is deployed, but removing what it left behind failed: {error}")


def rollback_from_state(state_file: Path, kubectl: Kubectl, seconds: float) -> None:
    """The rollback of a deploy process that was killed before it could roll back itself."""
    started = time.monotonic()
    # One budget for both: waiting for the killed deploy's children, then the rollback.
    with lock.held(state_file, seconds, "rollback"):
        _rollback_from_state(state_file, kubectl, seconds - (time.monotonic() - started))


def _rollback_from_state(state_file: Path, kubectl: Kubectl, seconds: float) -> None:
    if not state_file.exists():
        say(f"{state_file} does not exist: the deploy applied nothing; nothing to roll back")
        return
    state = DeployState.load(state_file)
    if state.complete:
        say(f"{state_file}: the deploy finished (or rolled back) itself; nothing to do")
        return
    left = rollback(kubectl, state, state_file, seconds)
    if left:
        raise ReleaseError(f"rollback left problems: {'; '.join(left)}")
    say("rolled back to what ran before the deploy")
