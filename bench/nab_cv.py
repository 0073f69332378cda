"""Cross-validated NAB score of the anomaly engine on the public half (issue 15).

All 29 public files are scored in-process by one engine, one series per file, fed in
lockstep (row i of every file in one batch), which is causal and equals a fresh engine per
file.  The 12 folds: leave one category out (6: the two artificial
categories are one) and 6 seeded random 50/50 splits of the
files.  In each fold NAB's own scorer picks the threshold of each profile on the training
files and applies it, fixed, to the held-out files; a fold's figure is its held-out score.
The table gives each fold, the mean and the worst fold.

``python -m bench.nab_cv`` prints the table for the default configuration;
``--sweep`` also ranks a small grid of generic settings by their worst fold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ingest.anomaly.config import DetectorConfig
from ingest.anomaly.detect_csv import read_series
from ingest.anomaly.engine import AnomalyEngine

REPO = Path(__file__).resolve().parents[1]
RANDOM_SPLITS = 6
SPLIT_SEED = 15
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def nab_dir() -> Path:
    """PANTAU_NAB_DIR, else `shared/nab` beside the checkout (or beside its parent, for a
    git worktree one level down)."""
    given = os.environ.get("PANTAU_NAB_DIR")
    if given:
        return Path(given)
    near = [base / "shared" / "nab" for base in (REPO.parent, REPO.parent.parent)]
    return next((path for path in near if path.is_dir()), near[0])


def _scorer(root: Path) -> Any:
    sys.path.insert(0, str(root))
    try:
        import nab_score
    finally:
        sys.path.remove(str(root))
    return nab_score


def load_public(root: Path) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    files = json.loads((root / "split.json").read_text())["public"]
    return files, [read_series(root / "data" / rel)[2:] for rel in files]


def score_all(
    series: list[tuple[np.ndarray, np.ndarray]], config: DetectorConfig | None = None
) -> list[np.ndarray]:
    """Scores of every file, all files in one engine, row i of each file per batch."""
    eng = AnomalyEngine(config, initial_capacity=len(series))
    ids = eng.series_ids([f"file-{i}" for i in range(len(series))])
    lengths = np.array([v.shape[0] for _, v in series])
    out = [np.zeros(n) for n in lengths]
    width = int(lengths.max())
    ts = np.full((len(series), width), np.nan)
    xs = np.full((len(series), width), np.nan)
    for i, (t, v) in enumerate(series):
        ts[i, : t.shape[0]] = t
        xs[i, : v.shape[0]] = v
    live = np.arange(len(series))
    for row in range(width):
        if row in lengths:
            live = live[lengths[live] > row]
        res = eng.update(ids[live], ts[live, row], xs[live, row]).score
        for j, s in zip(live, res, strict=True):
            out[j][row] = s
    return out


def _category(rel: str) -> str:
    """NAB category; the two artificial ones are one (files without windows score alone as
    undefined, so artificialNoAnomaly is held out together with artificialWithAnomaly)."""
    cat = rel.split("/")[0]
    return "artificial" if cat.startswith("artificial") else cat


def folds(files: list[str]) -> list[tuple[str, list[int]]]:
    """(name, held-out file indices): one per category, then seeded random halves."""
    cats = sorted({_category(f) for f in files})
    out = [(f"LOCO {c}", [i for i, f in enumerate(files) if _category(f) == c]) for c in cats]
    rng = np.random.default_rng(SPLIT_SEED)
    for k in range(RANDOM_SPLITS):
        perm = rng.permutation(len(files))
        out.append((f"half {k + 1}", sorted(int(i) for i in perm[: len(files) // 2])))
    return out


def cross_validate(
    root: Path, files: list[str], scores: list[np.ndarray], corpus: list[Any] | None = None
) -> dict[str, Any]:
    ns = _scorer(root)
    corpus = corpus or ns.load_corpus(str(root), files)
    sc = [s[lf.probation :] for lf, s in zip(corpus, scores, strict=True)]
    rows = []
    for name, test in folds(files):
        train = [i for i in range(len(files)) if i not in test]
        fit = ns.score_corpus([corpus[i] for i in train], [sc[i] for i in train])
        thr = {p: fit[p]["threshold"] for p in PROFILES}
        held = ns.score_corpus([corpus[i] for i in test], [sc[i] for i in test], thresholds=thr)
        rows.append(
            {
                "fold": name,
                "held_out_files": len(test),
                **{p: held[p]["score"] for p in PROFILES},
                "thresholds": thr,
                "windows_hit": held["standard"]["windows_hit"],
                "windows": held["standard"]["windows"],
                "fp": held["standard"]["fp"],
            }
        )
    whole = ns.score_corpus(corpus, sc)
    summary = {
        p: {
            "mean": float(np.mean([r[p] for r in rows])),
            "worst": float(np.min([r[p] for r in rows])),
        }
        for p in PROFILES
    }
    return {
        "folds": rows,
        "summary": summary,
        "whole_public_half": {
            p: {k: whole[p][k] for k in ("score", "threshold", "windows_hit", "windows", "fp")}
            for p in PROFILES
        },
    }


def print_table(cv: dict[str, Any], out: Any = sys.stdout) -> None:
    print(f"{'fold':<32}{'files':>6}{'standard':>10}{'low FP':>9}{'low FN':>9}{'hit':>8}", file=out)
    for r in cv["folds"]:
        print(
            f"{r['fold']:<32}{r['held_out_files']:>6}{r['standard']:>10.1f}"
            f"{r['reward_low_FP_rate']:>9.1f}{r['reward_low_FN_rate']:>9.1f}"
            f"{r['windows_hit']:>4}/{r['windows']:<3}",
            file=out,
        )
    for agg in ("mean", "worst"):
        s = cv["summary"]
        print(
            f"{agg:<38}{s['standard'][agg]:>10.1f}{s['reward_low_FP_rate'][agg]:>9.1f}"
            f"{s['reward_low_FN_rate'][agg]:>9.1f}",
            file=out,
        )


SWEEP: dict[str, list[Any]] = {
    "alpha_hour": [0.3, 0.5, 0.8],
    "alpha_week": [0.0, 0.05, 0.1, 0.2],
    "shift_run": [0, 8, 12, 24],
    "trend_sigma": [0.0, 6.0],
    "trend_factor": [1.2, 1.5, 2.0],
    "alpha_trend": [0.05, 0.1, 0.2],
    "alpha_level": [0.01, 0.02, 0.04],
    "raw_scale": [3.0, 4.0, 5.0],
    "hold_intervals": [50.0, 100.0, 200.0],
    "fire_level": [0.35, 0.45, 0.55],
    "w_level": [0.2, 0.3, 0.5],
    "w_roc": [0.2, 0.3, 0.5],
    "novelty_tol": [0.02, 0.05, 0.1],
}


def sweep(root: Path, base: DetectorConfig, rounds: int = 1) -> DetectorConfig:
    """Coordinate search: one knob at a time, keep a value only if the worst fold rises."""
    files, series = load_public(root)
    corpus = _scorer(root).load_corpus(str(root), files)

    def judge(cfg: DetectorConfig) -> tuple[float, float]:
        cv = cross_validate(root, files, score_all(series, cfg), corpus)
        s = cv["summary"]["standard"]
        return s["worst"], s["mean"]

    best = base
    best_key = judge(base)
    print(f"base: worst {best_key[0]:.2f} mean {best_key[1]:.2f}", flush=True)
    for _ in range(rounds):
        for knob, values in SWEEP.items():
            for v in values:
                if getattr(best, knob) == v:
                    continue
                cfg = dataclasses.replace(best, **{knob: v})
                key = judge(cfg)
                print(f"  {knob}={v}: worst {key[0]:.2f} mean {key[1]:.2f}", flush=True)
                if key > best_key:
                    best, best_key = cfg, key
                    print(f"* keep {knob}={v}", flush=True)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args(argv)
    root = nab_dir()
    if args.sweep:
        best = sweep(root, DetectorConfig())
        print(json.dumps(dataclasses.asdict(best), indent=1))
        return 0
    files, series = load_public(root)
    cv = cross_validate(root, files, score_all(series))
    print_table(cv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
