"""Score one CSV series (``timestamp,value``) with the streaming engine, causally.

This is the NAB-style command behind ``pantau detect IN OUT`` and
``python -m ingest.anomaly IN OUT``: it writes ``timestamp,value,anomaly_score`` with one
row per input row, in input order.  The rows are fed to the same ``AnomalyEngine`` used
live, in chunks; inside a chunk the engine applies the rows of the series one round at a
time, so every score depends only on earlier rows.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

from ingest.anomaly.config import DetectorConfig
from ingest.anomaly.engine import AnomalyEngine

CHUNK_ROWS = 512


def parse_timestamp(text: str) -> float:
    """Epoch seconds from epoch seconds, ISO 8601 / RFC 3339 (naive means UTC)."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    stamp = dt.datetime.fromisoformat(t)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _parse_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")  # scored 0, never learned


def read_series(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(raw timestamps, raw values, epoch seconds, float values) of a ``timestamp,value`` CSV."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        it, iv = header.index("timestamp"), header.index("value")
        stamps: list[str] = []
        raw_values: list[str] = []
        for row in reader:
            if row:
                stamps.append(row[it])
                raw_values.append(row[iv])
    ts = np.array([parse_timestamp(s) for s in stamps], dtype=np.float64)
    values = np.array([_parse_value(v) for v in raw_values], dtype=np.float64)
    return stamps, raw_values, ts, values


def score_series(
    ts: np.ndarray, values: np.ndarray, config: DetectorConfig | None = None
) -> np.ndarray:
    """Anomaly scores of one series fed through a fresh engine in causal chunks."""
    engine = AnomalyEngine(config, initial_capacity=1)
    sid = engine.series_id("series")
    out = np.zeros(values.shape[0], dtype=np.float64)
    for start in range(0, values.shape[0], CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, values.shape[0])
        ids = np.full(stop - start, sid, dtype=np.int64)
        out[start:stop] = engine.update(ids, ts[start:stop], values[start:stop]).score
    return out


def run_detect(in_path: Path, out_path: Path, config: DetectorConfig | None = None) -> None:
    """Read ``timestamp,value`` from ``in_path``; write ``timestamp,value,anomaly_score``."""
    stamps, raw_values, ts, values = read_series(Path(in_path))
    scores = score_series(ts, values, config)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score"])
        for t, v, s in zip(stamps, raw_values, scores, strict=True):
            w.writerow([t, v, f"{s:.12g}"])
