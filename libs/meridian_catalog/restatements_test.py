"""Nothing outside the catalog restates a service's ports or converts its name.

The repository test scans the files this test target depends on (its BUILD file lists
every consumer of the catalog: Tiltfile, Makefile, workflows, manifests, BUILD macros,
scripts, the chassis and the release tools) and checks that they are all present, so
a consumer left out of the scan fails instead of passing unread.
"""

from __future__ import annotations

from pathlib import Path

from meridian_catalog.catalog import load_catalog
from meridian_catalog.restatements import (
    NAME_CONVERSION,
    SERVICE_PORT,
    Restatement,
    find_restatements,
    port_pattern,
    scan_text,
)
from meridian_chassis.declaration import Declaration

# Matches that are no restatement of the catalog, and why: (file, part of the line;
# "" for the whole file).
NOT_RESTATEMENTS = {
    # CockroachDB's own HTTP console listens on 8080 too; it is not a Meridian service.
    ("deployments/k8s/local/cockroachdb.yaml", ""),
    ("Tiltfile", "port_forward(8090, 8080"),
    ("deployments/tests/test_tiltfile.py", "8090: 8080"),
    # GitHub Actions' INPUT_<NAME> variables: an action input, not a service name.
    ("tools/ci_rehearsal/standins_test.py", "INPUT_"),
    # A stand-in kubectl's canned messages from a pod, verbatim.
    ("tools/release/kubectl_standin.py", ""),
}
# Restatements not yet replaced by a read of the catalog. This list only shrinks: an
# entry that no longer matches fails the test until it is removed.
NOT_YET_FROM_THE_CATALOG = {
    ("deployments/docker/Dockerfile", SERVICE_PORT),
    ("deployments/k8s/base/service-template/deployment.yaml", SERVICE_PORT),
    ("deployments/k8s/base/service-template/service.yaml", SERVICE_PORT),
    ("deployments/k8s/base/service-template/settings.env", SERVICE_PORT),
    ("deployments/k8s/components/production-policies/network-policies.yaml", SERVICE_PORT),
    ("libs/meridian_chassis/config.py", SERVICE_PORT),
    ("libs/meridian_chassis/config_test.py", SERVICE_PORT),
}
# The consumers of the catalog; each must be in the scan (see the BUILD file).
CONSUMERS = (
    "Tiltfile",
    "Makefile",
    ".github/workflows/ci.yml",
    "build-support/macros.py",
    "deployments/docker/Dockerfile",
    "deployments/k8s/base/service-template/deployment.yaml",
    "deployments/local/processes.yaml",
    "libs/meridian_chassis/config.py",
    "libs/meridian_devstack/main.py",
    "tools/images/build.sh",
    "tools/images/imagecheck.py",
    "tools/release/__main__.py",
    "tools/release/render.py",
)


def excused(restatement: Restatement, path: str, part: str) -> bool:
    return restatement.path == path and part in restatement.text


def test_nothing_outside_the_catalog_restates_it() -> None:
    root = Path.cwd()
    missing = [path for path in CONSUMERS if not (root / path).is_file()]
    assert not missing, f"not in the scan (add them to the test's dependencies): {missing}"

    found = find_restatements(root, load_catalog(root))

    found = [r for r in found if not any(excused(r, *entry) for entry in NOT_RESTATEMENTS)]
    new = [str(r) for r in found if (r.path, r.kind) not in NOT_YET_FROM_THE_CATALOG]
    assert not new, (
        "These restate what the catalog knows; read services/catalog.json (or the "
        "catalog's Python API) instead:\n" + "\n".join(new)
    )
    gone = sorted(NOT_YET_FROM_THE_CATALOG - {(r.path, r.kind) for r in found})
    assert not gone, f"no longer restated: remove from NOT_YET_FROM_THE_CATALOG: {gone}"


DECLARED = [Declaration(name="ledger-audit", package="ledger_audit", port=8084, needs=frozenset())]


def scan(text: str) -> list[str]:
    return [r.kind for r in scan_text("f", text, port_pattern([8080, 8084]))]


def test_name_conversions_in_each_language_are_found() -> None:
    assert scan('service = package.replace("_", "-")') == [NAME_CONVERSION]
    assert scan("pkg = service['name'].replace( '-' , '_' )") == [NAME_CONVERSION]
    assert scan('docker tag "$id" "meridian/${package//_/-}:ci"') == [NAME_CONVERSION]
    assert scan("name=$(echo \"$pkg\" | tr '_' '-')") == [NAME_CONVERSION]
    assert scan("echo $pkg | tr _ -") == [NAME_CONVERSION]
    assert scan("sed 's/_/-/g' services.list") == [NAME_CONVERSION]
    assert scan("sed -e 's|-|_|'") == [NAME_CONVERSION]


def test_other_replacements_are_not_name_conversions() -> None:
    assert scan('path.replace("/", ".")') == []
    assert scan("${ref//\\//-}") == []
    assert scan("tr -d '\\n'") == []
    assert scan("sed 's/-dirty//'") == []


def test_service_ports_are_found_only_as_whole_numbers() -> None:
    assert scan("containerPort: 8080") == [SERVICE_PORT]
    assert scan('prometheus.io/port: "8080"') == [SERVICE_PORT]
    assert scan("port_forwards='%d:8080'") == [SERVICE_PORT]
    assert scan("PORT=8084 ./pants run") == [SERVICE_PORT]
    assert scan("port: 18080") == []
    assert scan("version 1.8080 sha256:8080abc") == []
    assert scan("port: 8081") == []


def test_the_catalog_its_declarations_and_generated_files_are_not_scanned(
    tmp_path: Path,
) -> None:
    files = {
        "libs/meridian_catalog/derived.py": "CONTAINER_PORT = 8080\n",
        "services/ledger_audit/service.yaml": "port: 8084\n",
        "deployments/local/processes.yaml": (
            "# Generated by `make services` from services/*/service.yaml; do not edit.\n"
            "port: 8084\n"
        ),
        "deployments/k8s/service.yaml": "port: 8080\n",
        "docs/guide.md": "The service answers on 8084.\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)

    assert find_restatements(tmp_path, DECLARED) == [
        Restatement("deployments/k8s/service.yaml", 1, SERVICE_PORT, "port: 8080")
    ]
