import sys


def log(message: str) -> None:
    print(f"[ci-cache-demo] {message}", file=sys.stderr, flush=True)
