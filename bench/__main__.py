"""Run the benchmarks (`make bench`: all of them); each writes bench/results/<name>.json.

`python -m bench ingest decode` runs only those; `python -m bench --help` lists them.
"""

from __future__ import annotations

import argparse
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
    "bench.bench_alerts",
    "bench.bench_alert_latency",
    "bench.bench_registration",
]
NAMES = {module.removeprefix("bench.bench_"): module for module in BENCHMARKS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks; each writes bench/results/<name>.json.",
        epilog="The ingest benchmark is sized by PANTAU_BENCH_JSON_MESSAGES (100000) and "
        "PANTAU_BENCH_SENML_READINGS (500000; 0 skips its SenML phases).",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"some of: {', '.join(NAMES)} (default: all)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    failed = 0
    for name in [NAMES[n] for n in args.names] or BENCHMARKS:
        try:
            importlib.import_module(name).main()
        except Exception as exc:  # report and go on with the others
            print(f"{name} failed: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
