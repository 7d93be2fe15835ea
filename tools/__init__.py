"""Meridian build and release tooling run from the repository root (python3 -m tools.X)."""
