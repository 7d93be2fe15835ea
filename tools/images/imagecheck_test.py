"""imagecheck.py's own parts: how it runs a container and what it syncs. The checks
themselves run against real images and engines (`make test-images`)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from meridian_chassis.declaration import CONTAINER_PORT
from tools.images import imagecheck


def test_runs_as_kubernetes_does_on_either_network() -> None:
    published = imagecheck.run_args(host_network=False, port=40001)
    assert published[-2:] == ["-p", f"127.0.0.1:40001:{CONTAINER_PORT}"]
    host = imagecheck.run_args(host_network=True, port=40001)
    assert host[-6:] == ["--network", "host", "-e", "HOST=127.0.0.1", "-e", "PORT=40001"]
    for args in (published, host):
        tmpfs = "/tmp:rw,size=16m"  # noqa: S108 # the container's
        assert {"--read-only", "no-new-privileges", "ALL", tmpfs} <= set(args)
        assert "DATABASE_URL=postgresql://meridian@127.0.0.1:1/meridian" in args


def test_the_sync_archive_is_tilts() -> None:
    data = imagecheck.sync_archive("/app/lib/pkg", "main.py", b"print(1)\n")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        assert [(m.name, m.isdir()) for m in members] == [
            ("app/lib/pkg", True),
            ("app/lib/pkg/main.py", False),
        ]
        synced = archive.extractfile(members[1])
        assert synced is not None
        assert synced.read() == b"print(1)\n"


def test_a_check_counts_its_failures() -> None:
    checks = imagecheck.Checks()
    assert checks.equals("same", 1, 1)
    assert not checks.equals("differs", 1, 2)
    assert not checks("fails", False)
    assert checks.failures == 2


def test_the_size_budget_follows_what_the_service_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = [
        {"package": "fx_rates", "name": "fx-rates", "needs": []},
        {"package": "ledger", "name": "ledger", "needs": ["database", "redis"]},
    ]
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"container_port": 9000, "services": services}))
    monkeypatch.setattr(imagecheck, "CATALOG", catalog)
    assert not imagecheck.needs_backing_services("fx_rates")
    assert imagecheck.size_budget("fx_rates") == 30_000_000
    assert imagecheck.needs_backing_services("ledger")
    assert imagecheck.size_budget("ledger") == 35_000_000
