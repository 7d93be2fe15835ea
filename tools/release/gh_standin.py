"""A stand-in for the `gh` CLI, for the promotion tests: GitHub is not reachable here.

STANDIN_GH holds {"api": {"<path with query>": <JSON answer>}}; `gh api PATH` answers
from it (unknown paths fail like a 404), `gh api --method M PATH [--input -]` appends the
write to the JSON lines file STANDIN_GH_CALLS and answers `"M PATH"`'s entry, if any.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    recorded = json.loads(Path(os.environ["STANDIN_GH"]).read_text())
    if argv[0] == "api" and "--method" in argv:
        method, path = argv[argv.index("--method") + 1], argv[-1]
        body = json.loads(sys.stdin.read()) if "--input" in argv else None
        with open(os.environ["STANDIN_GH_CALLS"], "a") as calls:
            calls.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")
        print(json.dumps(recorded["api"].get(f"{method} {path}", {})))
        return 0
    if argv[0] == "api":
        path = argv[-1]
        if path not in recorded["api"]:
            print(f"gh: Not Found (HTTP 404) {path}", file=sys.stderr)
            return 1
        print(json.dumps(recorded["api"][path]))
        return 0
    print(f"gh stand-in: unsupported call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
