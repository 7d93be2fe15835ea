"""Meridian's release logic: build metadata, affected services, release manifests,
deploys with rollback and release promotion. Standard library only, so CI runners and
developer machines run it with any Python 3.11+ (`python3 -m tools.release --help`)."""
