"""Benchmark the anomaly engine: update throughput on one core, and the NAB public-half score.

Usage (from the repository root)::

    python bench/bench_anomaly.py [--skip-speed] [--skip-nab] [--out bench/results/anomaly.json]

Speed: 10,000 live series, batches of 1,000 distinct series, timed with
``time.perf_counter`` around each ``update`` call after a warm-up, so the figures are the
time the detector adds to one batch.  NAB: runs ``python -m ingest.anomaly {in} {out}``
on every public-half file through NAB's own ``run_detector.py`` (one job, with
``--check-causal 3``) and records the three profile scores.  The NAB folder comes from
``PANTAU_NAB_DIR`` (default ``../shared/nab`` beside the repository); when it is absent
the NAB part is recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import nab_cv  # noqa: E402
from ingest.anomaly import AnomalyEngine, DetectorConfig  # noqa: E402


def bench_speed(
    n_series: int = 10_000, batch: int = 1_000, warm_rounds: int = 700, rounds: int = 60
) -> dict[str, Any]:
    """Reading updates per second and milliseconds per 1,000-reading batch.

    The headline figures are for the steady state of a live system: every series has
    seen ``warm_rounds`` readings (past the engine's warm-up).  The same measurement is
    also taken while the series are young (readings 41-100), where the engine runs its
    slower warm-up path.
    """
    eng = AnomalyEngine(initial_capacity=1024)
    ids_all = eng.series_ids([f"dev-{i:05d}/value" for i in range(n_series)])
    rng = np.random.default_rng(0)
    level = rng.uniform(0, 500, n_series)
    spread = rng.uniform(0.5, 20, n_series)
    t0 = 1_750_000_000.0

    def one_round(r: int, timings: list[float] | None) -> None:
        # each round every series reports once, in a shuffled order split into batches
        perm = rng.permutation(n_series)
        ts_round = t0 + 60.0 * r
        vals = level + spread * rng.standard_normal(n_series)
        for k in range(0, n_series, batch):
            sel = perm[k : k + batch]
            ids = ids_all[sel]
            ts = np.full(sel.shape[0], ts_round) + rng.uniform(0, 30, sel.shape[0])
            x = vals[sel]
            start = time.perf_counter()
            eng.update(ids, ts, x)
            if timings is not None:
                timings.append(time.perf_counter() - start)

    def summary(t: np.ndarray) -> dict[str, Any]:
        return {
            "batches_timed": int(t.shape[0]),
            "updates_per_s": t.shape[0] * batch / float(t.sum()),
            # the median batch is the least disturbed by other jobs on a shared machine
            "updates_per_s_at_p50": batch / float(np.percentile(t, 50)),
            "ms_per_batch_mean": 1e3 * float(t.mean()),
            "ms_per_batch_p50": 1e3 * float(np.percentile(t, 50)),
            "ms_per_batch_p99": 1e3 * float(np.percentile(t, 99)),
        }

    young_rounds = 40
    for r in range(young_rounds):
        one_round(r, None)
    young: list[float] = []
    for r in range(young_rounds, young_rounds + rounds):
        one_round(r, young)
    for r in range(young_rounds + rounds, warm_rounds):
        one_round(r, None)
    steady: list[float] = []
    for r in range(warm_rounds, warm_rounds + rounds):
        one_round(r, steady)
    return {
        "series": n_series,
        "batch_rows": batch,
        "readings_per_series_before_timing": warm_rounds,
        **summary(np.array(steady)),
        "young_series": {
            "readings_per_series_before_timing": young_rounds,
            **summary(np.array(young)),
        },
        "state_bytes_per_series": AnomalyEngine.state_bytes_per_series(),
        "target_updates_per_s": 2_000_000,
        "target_ms_per_batch": 1.0,
    }


def bench_nab(nab_dir: Path) -> dict[str, Any]:
    """Run the NAB public half through the CLI and NAB's scorer."""
    runner = nab_dir / "run_detector.py"
    if not runner.is_file():
        return {"skipped": True, "reason": f"NAB runner not found at {runner}"}
    with tempfile.TemporaryDirectory(prefix="pantau-nab-") as tmp:
        out_dir = Path(tmp) / "out"
        summary = Path(tmp) / "summary.json"
        cmd_tpl = f"{sys.executable} -m ingest.anomaly {{in}} {{out}}"
        argv = [
            sys.executable, str(runner), "--subset", "public", "--out-dir", str(out_dir),
            "-j", "1", "--check-causal", "3", "--json", str(summary), "--cmd", cmd_tpl,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        log = proc.stdout + proc.stderr
        causal_lines = [ln for ln in log.splitlines() if ln.startswith("causality check:")]
        result: dict[str, Any] = {
            "skipped": False,
            "command": cmd_tpl,
            "exit_code": proc.returncode,
            "seconds": elapsed,
            "check_causal": {
                "files": 3,
                "passed": proc.returncode == 0 and "NOT CAUSAL" not in log,
                "max_abs_score_change": max(
                    (float(m.group(1)) for ln in causal_lines
                     if (m := re.search(r"max \|score change\| (\S+)", ln))),
                    default=None,
                ),
            },
        }  # fmt: skip
        if summary.is_file():
            profiles = json.loads(summary.read_text())["profiles"]
            result["profiles"] = {
                name: {k: p[k] for k in ("score", "threshold", "windows_hit", "windows", "fp")}
                for name, p in profiles.items()
            }
        else:
            result["log_tail"] = log[-3000:]
        return result


def bench_speed_best_of(repeats: int) -> dict[str, Any]:
    """`bench_speed` pinned to one core, `repeats` times; the best run is the headline.

    The machine is shared: other jobs load both cores, so the best of several runs is the
    closest to the engine's own cost, and every run and the load average are recorded.
    """
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
    runs = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        r = bench_speed()
        r["load_average_1min_before"] = round(load, 2)
        runs.append(r)
        print(
            f"speed run: {r['updates_per_s'] / 1e6:.2f} M updates/s steady, "
            f"({r['updates_per_s_at_p50'] / 1e6:.2f} M/s at the median batch), "
            f"{r['young_series']['updates_per_s'] / 1e6:.2f} M/s young, load {load:.2f}",
            flush=True,
        )
    best = max(runs, key=lambda r: r["updates_per_s"])
    return {
        "pinned_cpu": cpu,
        "repeats": repeats,
        "best": best,
        "all_updates_per_s": [round(r["updates_per_s"]) for r in runs],
        "all_young_updates_per_s": [round(r["young_series"]["updates_per_s"]) for r in runs],
        "load_averages": [r["load_average_1min_before"] for r in runs],
    }


def bench_city() -> dict[str, Any]:
    """The simulated city after warm-up (see bench/bench_detect_faults.py)."""
    from bench.bench_detect_faults import print_table, run

    hours = float(os.environ.get("PANTAU_BENCH_FAULT_HOURS", "48"))
    devices = int(os.environ.get("PANTAU_BENCH_FAULT_DEVICES", "200"))
    seeds = (11, 12, 13)  # one seed can sit on an edge: the target must hold on each
    out: dict[str, Any] = {
        f"city_scale_seed_{seed}": run(hours, devices, 60.0, seed, "city-scale") for seed in seeds
    }
    out["sensor_faults"] = run(6.0, None, 30.0, 11, "sensor-faults")
    out["flood_malili_primed_24h"] = run(10.0, None, 60.0, 11, "flood-malili", prime_hours=24.0)
    for result in out.values():
        print_table(result)
    print_seed_table([out[f"city_scale_seed_{seed}"] for seed in seeds], seeds)
    return out


def print_seed_table(results: list[dict[str, Any]], seeds: tuple[int, ...]) -> None:
    """The city-scale target per seed: precision >= 0.5 with spike/drift/stuck recall >= 0.8."""
    print("city-scale per seed (target: precision >= 0.5 with recall >= 0.8 on each kind)")
    print(
        f"  {'seed':<6}{'events':>7}{'precision':>10}{'(no showers)':>13}"
        f"{'spike':>7}{'drift':>7}{'stuck':>7}{'drift before its end':>22}  target"
    )
    for seed, r in zip(seeds, results, strict=True):
        k = r["by_window_kind"]
        recall = [k[kind]["recall"] or 0.0 for kind in ("spike", "drift", "stuck")]
        met = r["precision"] >= 0.5 and min(recall) >= 0.8
        print(
            f"  {seed:<6}{r['events_after_warmup']:>7}{r['precision']:>10.3f}"
            f"{r['precision_no_showers']:>13.3f}"
            + "".join(f"{x:>7.2f}" for x in recall)
            + f"{k['drift'].get('recall_during', float('nan')):>22.2f}"
            + ("  met" if met else "  NOT met")
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-nab", action="store_true")
    ap.add_argument("--skip-city", action="store_true")
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "anomaly.json")
    args = ap.parse_args(argv or [])  # `python -m bench anomaly` calls main() with none
    nab_dir = nab_cv.nab_dir()
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "detector_config": DetectorConfig().to_dict(),
    }
    if args.skip_nab:
        results["nab"] = {"skipped": True, "reason": "--skip-nab"}
    elif not nab_dir.is_dir():
        results["nab"] = {"skipped": True, "reason": f"NAB folder {nab_dir} not found"}
    else:
        files, series = nab_cv.load_public(nab_dir)
        cv = nab_cv.cross_validate(nab_dir, files, nab_cv.score_all(series))
        print("NAB public half, 12-fold cross-validation (held-out score per fold):")
        nab_cv.print_table(cv)
        results["nab_cv"] = cv
        results["nab"] = bench_nab(nab_dir)
        print(json.dumps(results["nab"].get("check_causal"), indent=None))
    if args.skip_city:
        results["city"] = {"skipped": True, "reason": "--skip-city"}
    else:
        results["city"] = bench_city()
    if args.skip_speed:
        results["speed"] = {"skipped": True, "reason": "--skip-speed"}
    else:
        results["speed"] = bench_speed_best_of(args.speed_repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
