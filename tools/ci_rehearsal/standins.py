"""Stand-ins for the third-party actions, each written from its documented contract
(contracts.py): the inputs it reads (`INPUT_<NAME>`), the outputs, environment, PATH
entries and state it writes (the files GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and
GITHUB_STATE name), and its effects on files. act runs each through a two-line node
action that calls

    python3 -m tools.ci_rehearsal.standins NAME main|post

Where an action needs GitHub's services the stand-in keeps the effect local (artifacts
and caches in directories of the rehearsal) or says "not rehearsed: <reason>" and fails,
so nothing passes by doing nothing.

The rehearsal tells the stand-ins where things are through REHEARSAL_* variables:
REHEARSAL_ORIGIN (the repository checkout clones), REHEARSAL_STATE (this run's
artifacts), REHEARSAL_CACHE (the actions/cache store, kept between runs),
REHEARSAL_PYTHONS (JSON: "3.9" -> [full version, installation prefix]) and
REHEARSAL_TOOLS (the bin directory of the pinned image tools: hadolint, trivy, syft).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Resolved once: the jobs' PATH changes as steps add to it.
GIT = shutil.which("git") or "/usr/bin/git"
CP = shutil.which("cp") or "/bin/cp"


class StandInError(Exception):
    pass


def not_rehearsed(what: str, reason: str) -> None:
    print(f"not rehearsed: {what}: {reason}", flush=True)


@dataclass(frozen=True)
class Step:
    """One run of an action: its inputs and the runner's command files."""

    env: Mapping[str, str]

    def input(self, name: str) -> str:
        return self.env.get(f"INPUT_{name.replace(' ', '_').upper()}", "").strip()

    def flag(self, name: str) -> bool:
        return self.input(name).lower() == "true"

    def lines(self, name: str) -> list[str]:
        return [line.strip() for line in self.input(name).splitlines() if line.strip()]

    def setting(self, name: str) -> str:
        value = self.env.get(name, "")
        if not value:
            raise StandInError(f"{name} is not set: run this through `make ci-rehearsal`")
        return value

    @property
    def workspace(self) -> Path:
        return Path(self.setting("GITHUB_WORKSPACE"))

    def path(self, value: str) -> Path:
        """A path input as the runner reads it: ~ is HOME, relative is the workspace."""
        if value.startswith("~"):
            value = self.setting("HOME") + value[1:]
        path = Path(value)
        return path if path.is_absolute() else self.workspace / path

    def _append(self, variable: str, name: str, value: str) -> None:
        with open(self.setting(variable), "a", encoding="utf-8") as file:
            if "\n" in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
                file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                file.write(f"{name}={value}\n")

    def output(self, name: str, value: str) -> None:
        self._append("GITHUB_OUTPUT", name, value)

    def export(self, name: str, value: str) -> None:
        self._append("GITHUB_ENV", name, value)

    def save_state(self, name: str, value: str) -> None:
        self._append("GITHUB_STATE", name, value)

    def state(self, name: str) -> str:
        return self.env.get(f"STATE_{name}", "")

    def add_path(self, directory: Path) -> None:
        with open(self.setting("GITHUB_PATH"), "a", encoding="utf-8") as file:
            file.write(f"{directory}\n")


def run(command: Sequence[str], cwd: Path | None = None) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


# actions/checkout ----------------------------------------------------------------------


def checkout(step: Step) -> None:
    """Clones the event's repository at the event's commit into the workspace (or
    `path`); `fetch-depth: 0` fetches every branch and tag, N the last N commits."""
    repository = step.input("repository")
    if repository and repository != step.env.get("GITHUB_REPOSITORY"):
        raise StandInError(f"checkout of another repository ({repository}) is not rehearsed")
    ref = step.input("ref") or step.setting("GITHUB_SHA")
    dest = step.path(step.input("path") or ".")
    if dest.exists() and step.input("clean") != "false":
        for child in dest.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    depth = int(step.input("fetch-depth") or "1")
    run([GIT, "init", "-q", str(dest)])
    run([GIT, "-C", str(dest), "remote", "add", "origin", step.setting("REHEARSAL_ORIGIN")])
    if depth == 0:
        run(
            [
                "git",
                "-C",
                str(dest),
                "fetch",
                "-q",
                "--tags",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ]
        )
    else:
        run([GIT, "-C", str(dest), "fetch", "-q", "--no-tags", f"--depth={depth}", "origin", ref])
        ref = "FETCH_HEAD" if not step.input("ref") else ref
    commit = subprocess.run(
        [GIT, "-C", str(dest), "rev-parse", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    github_ref = step.env.get("GITHUB_REF", "")
    if github_ref.startswith("refs/heads/") and not step.input("ref"):
        run(
            [
                "git",
                "-C",
                str(dest),
                "checkout",
                "-q",
                "-B",
                github_ref[len("refs/heads/") :],
                commit,
            ]
        )
    else:
        run([GIT, "-C", str(dest), "checkout", "-q", "--detach", commit])
    step.output("ref", step.input("ref") or github_ref)
    step.output("commit", commit)


# actions/setup-python -------------------------------------------------------------------


def setup_python(step: Step) -> None:
    """Installs the version into the tool cache (<cache>/Python/<version>/x64) and sets
    `python-version` and `python-path`. With `update-environment: true` (the default) it
    also puts the installation on PATH and exports pythonLocation and friends; with
    `false` PATH and the environment are left alone."""
    wanted = step.input("python-version")
    pythons: dict[str, list[str]] = json.loads(step.setting("REHEARSAL_PYTHONS"))
    if wanted not in pythons:
        raise StandInError(
            f"python-version {wanted!r}: this machine has CPython {', '.join(sorted(pythons))}"
        )
    full, prefix = pythons[wanted]
    version_dir = Path(step.setting("RUNNER_TOOL_CACHE")) / "Python" / full
    install = version_dir / "x64"
    version_dir.mkdir(parents=True, exist_ok=True)
    if not install.exists():
        # The machine's installation stands in for the one setup-python downloads.
        install.symlink_to(prefix, target_is_directory=True)
    (version_dir / "x64.complete").touch()
    bin_dir = install / "bin"
    python = bin_dir / "python"
    if not python.exists():
        python = bin_dir / f"python{wanted}"
    step.output("python-version", full)
    step.output("python-path", str(python))
    step.output("cache-hit", "false")
    if step.input("cache"):
        not_rehearsed(
            f"setup-python cache: {step.input('cache')}", "package manager caches are not kept"
        )
    if step.flag("update-environment"):
        for name in ("pythonLocation", "Python_ROOT_DIR", "Python2_ROOT_DIR", "Python3_ROOT_DIR"):
            step.export(name, str(install))
        step.export("PKG_CONFIG_PATH", str(install / "lib/pkgconfig"))
        step.add_path(install)
        step.add_path(bin_dir)


# actions/cache -------------------------------------------------------------------------


def _entry_dir(store: Path, key: str) -> Path:
    return store / hashlib.sha256(key.encode()).hexdigest()[:32]


def _copy_tree(source: Path, dest: Path) -> None:
    """Hard links where the file system allows (fast for Pants' caches), else copies.
    Pants and pip write new files rather than rewrite old ones, so sharing is safe.
    Files already there stay: on a host runner the jobs share one HOME, and another job
    may be using what it restored a moment earlier."""
    dest.mkdir(parents=True, exist_ok=True)
    contents, into = f"{source}/.", f"{dest}/"
    if subprocess.run([CP, "-aln", contents, into], capture_output=True, check=False).returncode:
        subprocess.run([CP, "-an", contents, into], check=True)


def _entries(store: Path) -> list[tuple[float, str, Path]]:
    found = []
    for manifest in store.glob("*/manifest.json"):
        data = json.loads(manifest.read_text())
        found.append((float(data["saved"]), str(data["key"]), manifest.parent))
    return sorted(found, reverse=True)


def cache_restore(step: Step) -> None:
    """Restores the entry saved under `key`, else the newest whose key starts with one
    of `restore-keys`; `cache-hit` is true only for the exact key. The store is a
    directory kept between rehearsals (GitHub keeps a repository's caches for a week)."""
    store = Path(step.setting("REHEARSAL_CACHE"))
    key = step.input("key")
    step.save_state("primary", key)
    step.output("cache-primary-key", key)
    entries = _entries(store)
    matched = next((entry for entry in entries if entry[1] == key), None)
    for prefix in step.lines("restore-keys"):
        if matched is None:
            matched = next((entry for entry in entries if entry[1].startswith(prefix)), None)
    if matched is None:
        print(f"Cache not found for input keys: {key}")
        step.output("cache-hit", "false")
        return
    _, matched_key, entry = matched
    paths = json.loads((entry / "manifest.json").read_text())["paths"]
    if not step.flag("lookup-only"):
        for index, original in enumerate(paths):
            source = entry / str(index)
            if source.exists():
                _copy_tree(source, step.path(original))
    print(f"Cache restored from key: {matched_key}")
    step.save_state("matched", matched_key)
    step.output("cache-matched-key", matched_key)
    step.output("cache-hit", "true" if matched_key == key else "false")


def cache_save(step: Step) -> None:
    """Post step: saves the paths under the primary key unless that key was restored."""
    key = step.state("primary")
    if not key or step.state("matched") == key:
        print(f"Cache hit occurred on the primary key {key}, not saving cache.")
        return
    store = Path(step.setting("REHEARSAL_CACHE"))
    final = _entry_dir(store, key)
    if final.exists():
        print(f"Unable to reserve cache with key {key}, another job may be creating this cache.")
        return
    partial = store / f".partial-{uuid.uuid4().hex}"
    partial.mkdir(parents=True)
    paths = step.lines("path")
    for index, original in enumerate(paths):
        source = step.path(original)
        if source.exists():
            _copy_tree(source, partial / str(index))
    (partial / "manifest.json").write_text(
        json.dumps({"key": key, "paths": paths, "saved": time.time()})
    )
    partial.rename(final)
    print(f"Cache saved with key: {key}")


# actions/upload-artifact and download-artifact ---------------------------------------


def _artifact_files(step: Step) -> tuple[Path, list[Path]]:
    """The files the `path` patterns name (`!` excludes) and the root they are stored
    under: the least common ancestor of the search paths."""
    include_hidden = step.flag("include-hidden-files")
    included: set[Path] = set()
    excluded: set[Path] = set()
    roots: list[Path] = []
    for line in step.lines("path"):
        negated = line.startswith("!")
        target = excluded if negated else included
        base = step.path(line.lstrip("!"))
        if not negated:
            plain = Path(str(base).split("*")[0])
            roots.append(plain if plain.is_dir() and "*" not in str(base) else plain.parent)
        for match in glob.glob(str(base), recursive=True):
            path = Path(match)
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            target.update(files)
    files = sorted(
        path
        for path in included - excluded
        if include_hidden or not any(part.startswith(".") for part in path.parts[-1:])
    )
    root = Path(os.path.commonpath([str(r) for r in roots])) if roots else step.workspace
    return root, files


def upload_artifact(step: Step) -> None:
    name = step.input("name") or "artifact"
    root, files = _artifact_files(step)
    if not files:
        message = f"No files were found with the provided path: {step.input('path')}."
        mode = step.input("if-no-files-found") or "warn"
        if mode == "error":
            raise StandInError(message + " No artifacts will be uploaded.")
        print(
            ("::warning::" if mode == "warn" else "") + message + " No artifacts will be uploaded."
        )
        return
    dest = Path(step.setting("REHEARSAL_STATE")) / "artifacts" / name
    if dest.exists():
        if not step.flag("overwrite"):
            raise StandInError(
                f"an artifact with the name {name!r} already exists in this run (v4+ artifacts are immutable)"
            )
        shutil.rmtree(dest)
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(root)
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / relative)
        digest.update(str(relative).encode() + b"\0" + path.read_bytes())
    print(f"Artifact {name} has {len(files)} file(s), stored in {dest}")
    step.output("artifact-id", str(abs(hash(name)) % 10**9))
    step.output("artifact-url", dest.as_uri())
    step.output("artifact-digest", digest.hexdigest())


def download_artifact(step: Step) -> None:
    store = Path(step.setting("REHEARSAL_STATE")) / "artifacts"
    name = step.input("name")
    dest = step.path(step.input("path") or ".")
    if name:
        source = store / name
        if not source.is_dir():
            raise StandInError(f"Artifact not found for name: {name}")
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        for source in sorted(store.glob(step.input("pattern") or "*")):
            target = dest if step.flag("merge-multiple") else dest / source.name
            shutil.copytree(source, target, dirs_exist_ok=True)
    step.output("download-path", str(dest))


# Image tools ---------------------------------------------------------------------------


def _tool(step: Step, name: str) -> str:
    path = Path(step.setting("REHEARSAL_TOOLS")) / name
    if not path.exists():
        raise StandInError(f"{path} is missing: tools/images/tools.sh installs it")
    return str(path)


def hadolint(step: Step) -> None:
    command = [_tool(step, "hadolint"), "--failure-threshold", step.input("failure-threshold")]
    if step.input("config"):
        command += ["--config", str(step.path(step.input("config")))]
    for rule in filter(None, step.input("ignore").split(",")):
        command += ["--ignore", rule.strip()]
    command.append(str(step.path(step.input("dockerfile"))))
    result = subprocess.run(
        command, cwd=step.workspace, capture_output=True, text=True, check=False
    )
    print(result.stdout + result.stderr, end="")
    step.output("results", result.stdout)
    if result.returncode and not step.flag("no-fail"):
        raise StandInError(f"hadolint failed (exit {result.returncode})")


def trivy(step: Step) -> None:
    """`trivy <scan-type>` with the action's inputs. Vulnerability scanning needs the
    database Trivy downloads from GHCR, so that scanner is said not to run."""
    scan_type = step.input("scan-type")
    binary = _tool(step, "trivy")
    command = [
        binary,
        scan_type,
        "--severity",
        step.input("severity"),
        "--exit-code",
        step.input("exit-code") or "0",
    ]
    for directory in filter(None, step.input("skip-dirs").split(",")):
        command += ["--skip-dirs", directory.strip()]
    if step.input("trivyignores"):
        command += ["--ignorefile", str(step.path(step.input("trivyignores")))]
    if scan_type == "config":
        command += ["--skip-check-update"]
    elif scan_type == "fs":
        scanners = [s.strip() for s in (step.input("scanners") or "vuln,secret").split(",")]
        if "vuln" in scanners:
            not_rehearsed("trivy fs vulnerability scan", "Trivy's database is downloaded from GHCR")
            scanners.remove("vuln")
        if not scanners:
            return
        command += ["--scanners", ",".join(scanners), "--skip-db-update"]
    else:
        raise StandInError(f"trivy-action scan-type {scan_type!r} is not rehearsed")
    command.append(step.input("scan-ref") or ".")
    run(command, cwd=step.workspace)


def setup_trivy(step: Step) -> None:
    step.add_path(Path(_tool(step, "trivy")).parent)
    print(f"trivy from tools/images/requirements.txt stands in for {step.input('version')}")


def download_syft(step: Step) -> None:
    """Outputs `cmd`, the syft to run. act gives steps a pseudo-terminal, GitHub does
    not; on one, syft's progress UI exits 0 without writing the SBOM, so `cmd` runs it
    as on GitHub: quiet, stdin not a terminal."""
    wrapper = Path(step.setting("RUNNER_TEMP")) / "syft-standin" / "syft"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{_tool(step, "syft")}" --quiet "$@" </dev/null\n')
    wrapper.chmod(0o755)
    step.output("cmd", str(wrapper))


def setup_kubectl(step: Step) -> None:
    kubectl = shutil.which("kubectl", path=step.env.get("PATH", ""))
    if kubectl is None:
        raise StandInError("kubectl is not on PATH (tools/install-dev-tools.sh installs it)")
    step.output("kubectl-path", kubectl)


def unavailable(reason: str) -> Callable[[Step], None]:
    def refuse(step: Step) -> None:
        raise StandInError(f"not rehearsed: {step.env.get('GITHUB_ACTION_REPOSITORY')}: {reason}")

    return refuse


MAIN: dict[str, Callable[[Step], None]] = {
    "actions/checkout": checkout,
    "actions/setup-python": setup_python,
    "actions/cache": cache_restore,
    "actions/cache/restore": cache_restore,
    "actions/upload-artifact": upload_artifact,
    "actions/download-artifact": download_artifact,
    "hadolint/hadolint-action": hadolint,
    "aquasecurity/trivy-action": trivy,
    "aquasecurity/setup-trivy": setup_trivy,
    "anchore/sbom-action/download-syft": download_syft,
    "azure/setup-kubectl": setup_kubectl,
    "helm/kind-action": unavailable("no Kubernetes cluster can run on this machine"),
    "docker/login-action": unavailable("no registry login: nothing is pushed"),
    "sigstore/cosign-installer": unavailable(
        "keyless signing needs GitHub's OIDC token, Fulcio and Rekor"
    ),
    "actions/attest-build-provenance": unavailable(
        "attestations need GitHub's OIDC token and attestations API"
    ),
}
POST: dict[str, Callable[[Step], None]] = {"actions/cache": cache_save}


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    if len(argv) != 2 or argv[1] not in ("main", "post"):
        print("usage: python3 -m tools.ci_rehearsal.standins ACTION main|post", file=sys.stderr)
        return 2
    table = MAIN if argv[1] == "main" else POST
    if argv[0] not in table:
        print(f"no {argv[1]} stand-in for {argv[0]}", file=sys.stderr)
        return 2
    try:
        table[argv[0]](Step(env))
    except (StandInError, subprocess.CalledProcessError, OSError) as error:
        print(f"::error::{argv[0]} (stand-in): {error}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
