"""Grafana dashboards as code (grafana-foundation-sdk), pushed with grafana-client."""
