"""Meridian's service catalog: the services under services/, and every file derived from
their declarations (services/<package>/service.yaml)."""
