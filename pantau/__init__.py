"""Pantau: IoT sensor ingestion and monitoring for a smart city.

This package holds what every component shares: settings, logging, the InfluxDB client, the
local stack launcher and the command-line entry point. The pipeline itself lives in the
top-level packages `ingest`, `devices`, `api`, `simulators` and `dashboards`.
"""

__version__ = "0.1.0"
