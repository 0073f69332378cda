"""Kesehatan Pipeline (pipeline health, Prometheus): ingest rate, write latency, lag,
rejects by reason, broker drops and backlog."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard

from dashboards.common import TIMEZONE, event_annotations
from dashboards.panels import number, series
from dashboards.queries import PrometheusQuery as PromQL

UID = "pantau-pipeline"
FILE = "pipeline-health.json"


def build() -> dash.Dashboard:
    return (
        dash.Dashboard("Pantau — Kesehatan Pipeline")
        .uid(UID)
        .description("The ingester and the broker, from Prometheus (ingest/metrics.py).")
        .tags(["pantau"])
        .timezone(TIMEZONE)
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .annotations(event_annotations(filtered=False))
        .with_panel(
            number(
                "MQTT tersambung",
                "1 when every ingester is connected to the broker.",
                [PromQL("min(pantau_ingest_mqtt_connected)")],
                "bool_yes_no",
            )
        )
        .with_panel(
            number(
                "InfluxDB menerima",
                "1 when InfluxDB accepts the ingesters' writes.",
                [PromQL("min(pantau_ingest_influx_up)")],
                "bool_yes_no",
            )
        )
        .with_panel(
            number(
                "Jeda (lag)",
                "Commit time minus arrival time of the oldest message of the last batch; "
                "warning past 60 s.",
                [PromQL("max(pantau_ingest_lag_seconds)")],
                "s",
            )
        )
        .with_panel(
            number(
                "Antrean di broker",
                "Messages the broker holds (queued, in flight, retained).",
                [PromQL("max(pantau_broker_messages_stored)")],
                "short",
            )
        )
        .with_panel(
            series(
                "Laju masuk",
                "Messages received and readings written per second, all ingesters.",
                [
                    PromQL(
                        "sum(rate(pantau_ingest_messages_received_total[$__rate_interval]))"
                    ).legend_format("pesan/s"),
                    PromQL(
                        "sum(rate(pantau_ingest_readings_written_total[$__rate_interval]))", "B"
                    ).legend_format("pembacaan/s"),
                ],
                "reqps",
            )
        )
        .with_panel(
            series(
                "Latensi tulis InfluxDB",
                "Write latency to InfluxDB per batch: median and 95th percentile.",
                [
                    PromQL(
                        "histogram_quantile(0.5, sum by (le) "
                        "(rate(pantau_ingest_write_seconds_bucket[$__rate_interval])))"
                    ).legend_format("p50"),
                    PromQL(
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(pantau_ingest_write_seconds_bucket[$__rate_interval])))",
                        "B",
                    ).legend_format("p95"),
                ],
                "s",
            )
        )
        .with_panel(
            series(
                "Pesan ditolak per alasan",
                "Rejected messages (dead letters) per second, by reason.",
                [
                    PromQL(
                        "sum by (reason) "
                        "(rate(pantau_ingest_messages_rejected_total[$__rate_interval]))"
                    ).legend_format("{{reason}}")
                ],
                "reqps",
            )
        )
        .with_panel(
            series(
                "Jeda dan antrean",
                "Lag (s) and the backlog: messages held by the broker and by the ingester.",
                [
                    PromQL("max(pantau_ingest_lag_seconds)").legend_format("jeda (s)"),
                    PromQL("max(pantau_broker_messages_stored)", "B").legend_format("broker"),
                    PromQL("sum(pantau_ingest_backlog_messages)", "C").legend_format("ingester"),
                ],
                "short",
            )
        )
        .with_panel(
            series(
                "Pesan dibuang broker",
                "Messages the broker dropped because a queue was full (overload: data lost), "
                "and readings missing from the devices' sequence numbers.",
                [
                    PromQL(
                        "max(increase(pantau_broker_messages_dropped_total[$__rate_interval]))"
                    ).legend_format("dibuang broker"),
                    PromQL(
                        "sum(increase(pantau_ingest_seq_gaps_total[$__rate_interval]))", "B"
                    ).legend_format("celah seq"),
                ],
                "short",
                w=24,
            )
        )
    )
