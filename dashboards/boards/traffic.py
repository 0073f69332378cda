"""Lalu Lintas (traffic): vehicle counts, speed and occupancy per counter, congestion."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from dashboards.common import TAG_FILTER, board, field, source, steps
from dashboards.panels import bars, series
from dashboards.queries import InfluxQL

UID = "pantau-traffic"
FILE = "traffic.json"

# Occupancy bands used as the congestion scale: lancar (free) < 15 %, padat (dense) 15-30 %,
# macet (jammed) above 30 % of the time the loop is occupied.
CONGESTION = steps((None, "green"), (15, "yellow"), (30, "red"))


def _per_counter(aggregate: str, name: str) -> InfluxQL:
    return InfluxQL(
        f"SELECT {aggregate}({field(name)}) FROM {source('traffic')} WHERE $timeFilter AND "
        f'{TAG_FILTER} GROUP BY time($__interval), "device_id" fill(none)'
    ).alias("$tag_device_id")


def build() -> dash.Dashboard:
    return (
        board(UID, "Pantau — Lalu Lintas", "Traffic counters: flow, speed, occupancy.", "traffic")
        .with_panel(
            series(
                "Jumlah kendaraan",
                "Vehicles counted per interval, per counter (sum of the readings' counts; on "
                "hourly the mean count per reading).",
                [_per_counter("sum", "vehicle_count")],
                "short",
            )
        )
        .with_panel(
            series(
                "Kecepatan rata-rata",
                "Mean speed of the vehicles counted, per counter.",
                [_per_counter("mean", "avg_speed_kmh")],
                "velocitykmh",
            )
        )
        .with_panel(
            series(
                "Okupansi",
                "Share of time the detector was occupied; above 15 % dense, above 30 % jammed.",
                [_per_counter("mean", "occupancy_pct")],
                "percent",
            ).thresholds(CONGESTION)
        )
        .with_panel(
            bars(
                "Kemacetan sekarang",
                "The last occupancy of every counter, as the congestion scale: lancar, padat, "
                "macet.",
                [
                    InfluxQL(
                        'SELECT last("occupancy_pct") FROM "raw"."traffic" WHERE $timeFilter AND '
                        f'{TAG_FILTER} GROUP BY "device_id"'
                    ).alias("$tag_device_id")
                ],
                "percent",
            ).thresholds(CONGESTION)
        )
    )
