"""The Meridian service chassis: health, metrics, version, config, logs and shutdown."""

from meridian_chassis.service import ServiceSpec, declared_service, run

__all__ = ["ServiceSpec", "declared_service", "run"]
