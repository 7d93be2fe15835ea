class DemoError(Exception):
    """A reason the demo cannot run or did not prove the cache; printed without a traceback."""
