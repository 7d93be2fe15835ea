"""Build metadata baked into the image (Dockerfile ARG -> ENV) or set by the launcher.

It is never read from git at run time: a running service reports what it was built
from, even when the source tree has moved on.
"""

from __future__ import annotations

from collections.abc import Mapping

from meridian.platform.v1.service_info_pb2 import ServiceInfo

UNKNOWN = "unknown"


def service_info(name: str, environ: Mapping[str, str]) -> ServiceInfo:
    return ServiceInfo(
        name=name,
        version=environ.get("MERIDIAN_BUILD_VERSION") or "0.0.0-dev",
        revision=environ.get("MERIDIAN_BUILD_REVISION") or UNKNOWN,
        build_date=environ.get("MERIDIAN_BUILD_DATE") or UNKNOWN,
    )
