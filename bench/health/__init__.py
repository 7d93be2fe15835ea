"""Benchmarks that print numbers: load on the health endpoints, start-up time."""
