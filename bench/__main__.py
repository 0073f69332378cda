"""Run every benchmark (`make bench`); each writes bench/results/<name>.json."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench.bench_decode",
    "bench.bench_ingest",
    "bench.bench_registry",
    "bench.bench_anomaly",
    "bench.bench_detect_faults",
    "bench.bench_simulators",
    "bench.bench_soak",
]


def main() -> int:
    failed = 0
    for name in BENCHMARKS:
        try:
            importlib.import_module(name).main()
        except Exception as exc:  # report and go on with the others
            print(f"{name} failed: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
