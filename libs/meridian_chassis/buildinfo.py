"""Build metadata: /etc/meridian/build.json in an image, or variables set by a launcher.

It is never read from git at run time: a running service reports what it was built
from, even when the source tree has moved on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from meridian.platform.v1.service_info_pb2 import ServiceInfo
from meridian_chassis.config import ConfigError

UNKNOWN = "unknown"
# Written by the image build (deployments/docker/layers.py srcs).
BUILD_FILE = Path("/etc/meridian/build.json")
EXPECTED_FORM = (
    'a JSON object of strings, e.g. {"version": "1.2.3", "revision": "0abc123", '
    '"date": "2026-11-26T00:00:00Z"}'
)


def read_build_file(path: Path) -> dict[str, str]:
    """The file's fields, or none when there is no file (a service run from source)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError([f"{path} is not JSON ({error}); expected {EXPECTED_FORM}"]) from None
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ConfigError([f"{path} holds {type(fields).__name__} data; expected {EXPECTED_FORM}"])
    return fields


def service_info(
    name: str, environ: Mapping[str, str], build_file: Path = BUILD_FILE
) -> ServiceInfo:
    """MERIDIAN_BUILD_* variables win over the build file, so a launcher can say more."""
    built = read_build_file(build_file)
    return ServiceInfo(
        name=name,
        version=environ.get("MERIDIAN_BUILD_VERSION") or built.get("version") or "0.0.0-dev",
        revision=environ.get("MERIDIAN_BUILD_REVISION") or built.get("revision") or UNKNOWN,
        build_date=environ.get("MERIDIAN_BUILD_DATE") or built.get("date") or UNKNOWN,
    )
