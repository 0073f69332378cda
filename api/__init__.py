"""The HTTP API (FastAPI): readings, devices, alerts and dead letters for people and tools."""
