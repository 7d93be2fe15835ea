"""Cold-start benchmark: fresh clone with empty caches to Pants ready, build done, stack ready."""
