"""The Meridian service chassis: health, metrics, version, config, logs and shutdown."""

from meridian_chassis.service import ServiceSpec, run

__all__ = ["ServiceSpec", "run"]
