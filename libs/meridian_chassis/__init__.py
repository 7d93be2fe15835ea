"""The Meridian service chassis: health, metrics, version, config, logs and shutdown."""

from meridian_chassis.launch import run
from meridian_chassis.spec import ServiceSpec, declared_service

__all__ = ["ServiceSpec", "declared_service", "run"]
