"""`pantau detect IN.csv OUT.csv`: the live detector over a CSV, Numenta Anomaly Benchmark style."""

from __future__ import annotations

from pathlib import Path

import typer


def detect_command(
    in_csv: Path = typer.Argument(..., exists=True, dir_okay=False, help="timestamp,value CSV"),
    out_csv: Path = typer.Argument(..., dir_okay=False, help="timestamp,value,anomaly_score"),
) -> None:
    """Score every row of IN.csv with the streaming engine (causal) and write OUT.csv."""
    from ingest.anomaly.detect_csv import run_detect

    run_detect(in_csv, out_csv)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect_command)
