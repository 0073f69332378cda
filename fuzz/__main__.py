"""`make fuzz` (`python -m fuzz`): the decoders and the validator under libFuzzer, then the API
under schemathesis; prints the case counts and exits non-zero on any escape or 5xx.

    python -m fuzz                       # both, at the sizes `make fuzz` uses
    python -m fuzz decoders --runs 100000 [--targets decode,pack]
    python -m fuzz api --examples 100 [--databases sqlite,postgresql]

Not part of `make test`: it explores at random (coverage-guided), which a test must not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from fuzz.decoders import TARGET_NAMES

    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", choices=["decoders", "api"], default=[])
    parser.add_argument(
        "--runs", type=int, default=100_000, help="cases per decoder target (default 100,000)"
    )
    parser.add_argument(
        "--targets", default=",".join(TARGET_NAMES), help="decoder targets, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=None, help="libFuzzer's seed (random)")
    parser.add_argument(
        "--examples", type=int, default=100, help="API cases per operation (default 100)"
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="the API's SQL backends, each a run on a fresh database (default: both)",
    )
    parser.add_argument(
        "--var-dir", type=Path, default=REPO / "var" / "fuzz", help="corpus, crashes, logs"
    )
    args = parser.parse_args(argv)
    what = args.what or ["decoders", "api"]
    ok = True
    if "decoders" in what:
        from fuzz.decoders import run_all

        names = [n for n in args.targets.split(",") if n]
        unknown = sorted(set(names) - set(TARGET_NAMES))
        if unknown:
            parser.error(f"unknown targets {unknown}; choose from {TARGET_NAMES}")
        ok = run_all(args.runs, args.var_dir, names, args.seed) and ok
    if "api" in what:
        from fuzz.api import run_api_fuzz

        ok = (
            run_api_fuzz(
                args.examples,
                args.var_dir / "api",
                backends=[b for b in args.databases.split(",") if b],
                seed=args.seed,
            )
            and ok
        )
    print("fuzz: no escapes" if ok else "fuzz: FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
