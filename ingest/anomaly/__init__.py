"""Streaming anomaly detection for Pantau sensor series (vectorised over series)."""

from ingest.anomaly.config import DetectorConfig
from ingest.anomaly.detect_csv import run_detect
from ingest.anomaly.engine import REASONS, AnomalyEngine, DetectionResult

__all__ = ["REASONS", "AnomalyEngine", "DetectionResult", "DetectorConfig", "run_detect"]
