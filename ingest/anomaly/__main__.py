"""``python -m ingest.anomaly IN.csv OUT.csv``: score a ``timestamp,value`` CSV."""

from __future__ import annotations

import sys
from pathlib import Path

from ingest.anomaly.detect_csv import run_detect


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print("usage: python -m ingest.anomaly IN.csv OUT.csv", file=sys.stderr)
        return 2
    run_detect(Path(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
