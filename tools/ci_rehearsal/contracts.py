"""The third-party actions Meridian's workflows use, described by their documented
contracts (inputs with defaults, outputs, whether they have a post step), and the steps
and jobs the rehearsal cannot run on a machine without GitHub's services.

A stand-in (standins.py) implements each contract: the inputs it reads, the outputs it
sets, its effects on PATH, the environment and files. None of the actions' code is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contract:
    """`uses:` name (owner/repo or owner/repo/path), inputs and their defaults, outputs."""

    name: str
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    post: bool = False

    @property
    def repository(self) -> str:
        return "/".join(self.name.split("/")[:2])

    @property
    def subpath(self) -> str:
        return "/".join(self.name.split("/")[2:])


CACHE_INPUTS = {"path": "", "key": "", "restore-keys": "", "lookup-only": "false"}
CACHE_OUTPUTS = ("cache-hit", "cache-primary-key", "cache-matched-key")
CONTRACTS = {
    contract.name: contract
    for contract in (
        Contract(
            "actions/checkout",
            {
                "repository": "",
                "ref": "",
                "path": "",
                "fetch-depth": "1",
                "persist-credentials": "true",
                "clean": "true",
            },
            ("ref", "commit"),
        ),
        Contract(
            "actions/setup-python",
            {
                "python-version": "",
                "update-environment": "true",
                "architecture": "x64",
                "cache": "",
            },
            ("python-version", "python-path", "cache-hit"),
        ),
        # actions/cache saves in its post step; its restore/ action only restores.
        Contract("actions/cache", CACHE_INPUTS, CACHE_OUTPUTS, post=True),
        Contract("actions/cache/restore", CACHE_INPUTS, CACHE_OUTPUTS),
        Contract(
            "actions/upload-artifact",
            {
                "name": "artifact",
                "path": "",
                "if-no-files-found": "warn",
                "retention-days": "0",
                "compression-level": "6",
                "overwrite": "false",
                "include-hidden-files": "false",
            },
            ("artifact-id", "artifact-url", "artifact-digest"),
        ),
        Contract(
            "actions/download-artifact",
            {"name": "", "path": "", "pattern": "", "merge-multiple": "false"},
            ("download-path",),
        ),
        Contract(
            "hadolint/hadolint-action",
            {
                "dockerfile": "./Dockerfile",
                "config": "",
                "failure-threshold": "info",
                "ignore": "",
                "no-fail": "false",
            },
            ("results",),
        ),
        Contract(
            "aquasecurity/trivy-action",
            {
                "scan-type": "image",
                "scan-ref": ".",
                "image-ref": "",
                "scanners": "",
                "severity": "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL",
                "ignore-unfixed": "false",
                "exit-code": "0",
                "skip-dirs": "",
                "trivyignores": "",
                "skip-setup-trivy": "false",
                "version": "v0.70.0",
            },
        ),
        Contract("aquasecurity/setup-trivy", {"version": "latest", "cache": "false"}),
        Contract("anchore/sbom-action/download-syft", {"syft-version": ""}, ("cmd",)),
        Contract("azure/setup-kubectl", {"version": "latest"}, ("kubectl-path",)),
        Contract(
            "helm/kind-action",
            {"version": "", "cluster_name": "chart-testing", "config": ""},
        ),
        Contract(
            "docker/login-action",
            {"registry": "", "username": "", "password": "", "logout": "true"},
        ),
        Contract("sigstore/cosign-installer", {"cosign-release": ""}),
        Contract(
            "actions/attest-build-provenance",
            {
                "subject-path": "",
                "subject-digest": "",
                "subject-name": "",
                "subject-checksums": "",
                "push-to-registry": "false",
            },
            ("bundle-path", "attestation-id", "attestation-url"),
        ),
    )
}


@dataclass(frozen=True)
class Skip:
    """A job (all its steps) or one step (by name) the rehearsal prints instead of running."""

    workflow: str
    job: str
    reason: str
    step: str = ""
    # pull_request or push; empty: both.
    event: str = ""


NO_CLUSTER = "no Kubernetes API server can run on this machine (no kind, k3s or envtest)"
NOT_REHEARSED = (
    Skip(
        "ci.yml",
        "static",
        "`go install` needs the Go toolchain and module proxy; the same actionlint "
        "checks the workflows in deployments/tests/test_workflows.py",
        step="actionlint",
    ),
    Skip(
        "ci.yml",
        "build",
        "Trivy's vulnerability database is downloaded from GHCR",
        step="Scan images (fail on fixable HIGH and CRITICAL)",
    ),
    Skip(
        "ci.yml",
        "build",
        "asks GitHub's deployments API for staging's commit (push to main); "
        "the rehearsal builds everything, as on a first deploy",
        step="Base commit",
        event="push",
    ),
    Skip("ci.yml", "e2e", f"kind: {NO_CLUSTER}"),
    Skip(
        "ci.yml",
        "publish",
        "pushes to ghcr.io and needs GITHUB_TOKEN's packages: write",
    ),
    Skip("ci.yml", "staging", f"deploys to the staging cluster: {NO_CLUSTER}"),
    Skip(
        "audit.yml",
        "make-audit",
        "make audit asks the OSV database for advisories, unreachable here (it fails closed)",
        step="Audit",
    ),
    Skip(
        "audit.yml",
        "second-opinion",
        "pip-audit asks the OSV database, unreachable here",
        step="pip-audit (OSV)",
    ),
)
