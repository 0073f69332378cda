"""Kesehatan Perangkat (device health): last seen, battery, radio, offline devices, dead
letters by reason."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from dashboards.common import TAG_FILTER, board, field, steps
from dashboards.panels import grid, series
from dashboards.queries import SQL, InfluxQL

UID = "pantau-device-health"
FILE = "device-health.json"

KINDS_RP = '"$rp"./^(water_level|environment|traffic)$/'


def _common(name: str) -> InfluxQL:
    return InfluxQL(
        f"SELECT mean({field(name)}) FROM {KINDS_RP} WHERE $timeFilter AND {TAG_FILTER} "
        'GROUP BY time($__interval), "device_id" fill(none)'
    ).alias("$tag_device_id")


# Dead letters live in SQL (ingest/dead_letters.py); Grafana's PostgreSQL macros bucket them.
DEAD_LETTERS_SQL = (
    "SELECT $__timeGroupAlias(received_at, $__interval), reason AS metric, count(*) AS value\n"
    "FROM dead_letters\n"
    "WHERE $__timeFilter(received_at)\n"
    "GROUP BY 1, 2\n"
    "ORDER BY 1"
)


def build() -> dash.Dashboard:
    last_seen = InfluxQL(
        'SELECT last("seq") AS "seq", last("battery_v") AS "baterai_v", '
        'last("rssi_dbm") AS "rssi_dbm" FROM "raw"./^(water_level|environment|traffic)$/ '
        f'WHERE $timeFilter AND {TAG_FILTER} GROUP BY "device_id"'
    ).table()
    offline = InfluxQL(
        'SELECT last("state") AS "status" FROM "raw"."device_status" '
        'WHERE $timeFilter AND "device_id" =~ /^$device$/ GROUP BY "device_id"'
    ).table()
    return (
        board(
            UID,
            "Pantau — Kesehatan Perangkat",
            "Device health: last seen, battery, radio, offline devices, dead letters.",
        )
        .with_panel(
            grid(
                "Terakhir terlihat",
                "Each device's last reading in the range (its time is the last-seen time), "
                "with its last battery voltage and signal strength.",
                [last_seen],
                w=12,
                h=10,
            )
        )
        .with_panel(
            grid(
                "Status koneksi",
                "Each device's last status message (online / offline, also its MQTT last "
                "will): offline devices first when sorted by status.",
                [offline],
                w=12,
                h=10,
            )
        )
        .with_panel(
            series(
                "Tegangan baterai",
                "Supply / battery voltage per device.",
                [_common("battery_v")],
                "volt",
            ).thresholds(steps((None, "red"), (11.5, "yellow"), (12.2, "green")))
        )
        .with_panel(
            series(
                "Kekuatan sinyal (RSSI)",
                "Radio signal strength per device; below -110 dBm links start to drop.",
                [_common("rssi_dbm")],
                "dBm",
            ).thresholds(steps((None, "red"), (-110, "yellow"), (-95, "green")))
        )
        .with_panel(
            series(
                "Pesan ditolak per alasan",
                "Dead letters (rejected messages) per reason, from the SQL dead-letter store: "
                "replay them from the API once the cause is fixed.",
                [SQL(DEAD_LETTERS_SQL, "A").time_series()],
                "short",
                w=24,
            )
        )
    )
