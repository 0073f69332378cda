"""Run every fuzz target of `fuzz/targets.py` for N cases each and report the counts.

Each target runs in its own process (libFuzzer ends the process when it is done), with a
corpus under `var/fuzz/corpus/<target>` that grows from run to run (coverage-guided: inputs
that reached new code are kept), the seeds and the JSON dictionary of `fuzz/targets.py`, and
crash inputs written to `var/fuzz/crashes/`. libFuzzer stops a target at its first escape, so
a target reports 0 or 1 escapes; the crash file reproduces it:
`python -m fuzz.targets NAME var/fuzz/crashes/NAME-crash-...`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TARGET_NAMES = ["decode", "pack", "timestamp", "topic", "validate", "pipeline"]
_DONE = re.compile(rb"Done (\d+) runs in (\d+) second")
_CRASH_FILE = re.compile(rb"Test unit written to (\S+)")


@dataclass
class TargetResult:
    name: str
    runs: int
    escapes: int
    seconds: float
    crash_file: str | None = None
    report: str = ""


def _seed_dir(var_dir: Path, name: str) -> Path:
    from fuzz.targets import seed_inputs

    seeds = var_dir / "seeds" / name
    seeds.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(seed_inputs(name)):
        (seeds / f"seed-{index:03d}").write_bytes(data)
    return seeds


def run_target(name: str, runs: int, var_dir: Path, seed: int | None = None) -> TargetResult:
    from fuzz.targets import write_dictionary

    corpus = var_dir / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = var_dir / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    dictionary = var_dir / "json.dict"
    write_dictionary(str(dictionary))
    argv = [
        sys.executable,
        "-m",
        "fuzz.targets",
        name,
        f"-runs={runs}",
        f"-dict={dictionary}",
        "-max_len=32768" if name != "pack" else "-max_len=4096",
        f"-artifact_prefix={crashes}/{name}-",
        "-timeout=20",  # seconds for one input: a hang is an escape too
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    if seed is not None:
        argv.append(f"-seed={seed}")
    argv += [str(corpus), str(_seed_dir(var_dir, name))]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, check=False)
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    done = _DONE.search(output)
    crash = _CRASH_FILE.search(output)
    executed = int(done.group(1)) if done else _executed_before_crash(output)
    escaped = proc.returncode != 0 or done is None
    report = ""
    if escaped:
        text = output.decode("utf-8", "replace")
        start = text.find("=== Uncaught Python exception")
        report = text[start : start + 3000] if start >= 0 else text[-3000:]
    return TargetResult(
        name=name,
        runs=executed,
        escapes=1 if escaped else 0,
        seconds=seconds,
        crash_file=crash.group(1).decode() if crash else None,
        report=report,
    )


def _executed_before_crash(output: bytes) -> int:
    """The last `#N` progress line libFuzzer printed before it stopped."""
    counts = re.findall(rb"^#(\d+)\s", output, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def run_all(runs: int, var_dir: Path, names: list[str], seed: int | None = None) -> bool:
    """Every target for `runs` cases; prints a table of counts; True when nothing escaped."""
    results = []
    for name in names:
        print(f"fuzzing {name} for {runs:,} cases ...", flush=True)
        result = run_target(name, runs, var_dir, seed)
        results.append(result)
        if result.escapes:
            print(f"  ESCAPE in {name} after {result.runs:,} cases: {result.crash_file}")
            print("  " + result.report.replace("\n", "\n  "))
    print()
    print(f"{'target':<12}{'cases':>12}{'escapes':>10}{'seconds':>10}")
    for r in results:
        print(f"{r.name:<12}{r.runs:>12,}{r.escapes:>10}{r.seconds:>10.0f}")
    total = sum(r.runs for r in results)
    escapes = sum(r.escapes for r in results)
    print(f"{'total':<12}{total:>12,}{escapes:>10}")
    return escapes == 0
