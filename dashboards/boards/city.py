"""Ringkasan Kota (city overview): the map of every device, active alerts, throughput."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.builders.common import FrameGeometrySource, MapLayerOptions
from grafana_foundation_sdk.models import common, dashboard

from dashboards.common import TAG_FILTER, board, steps
from dashboards.panels import grid, number, series, transform
from dashboards.queries import MIXED, SQL, InfluxQL
from dashboards.queries import PrometheusQuery as PromQL

UID = "pantau-city"
FILE = "city-overview.json"

KINDS = '"raw"./^(water_level|environment|traffic)$/'

# The registry gives position, name and maintenance status; InfluxDB the last alert change
# and the last online/offline status of each device. Grafana joins them on device_id.
# The map's colour, `kondisi`: the row-wise maximum of the last alert change's level_rank
# (0 normal ... 4) and the registry's maintenance status (9), so maintenance shows over alerts.
MAINTENANCE = 9
KONDISI = {
    0: ("normal", "green"),
    1: ("waspada / sedang", "yellow"),
    2: ("siaga / tidak sehat", "orange"),
    3: ("awas / sangat tidak sehat", "red"),
    4: ("berbahaya", "dark-red"),
    MAINTENANCE: ("pemeliharaan", "blue"),
}

DEVICES_SQL = (
    "SELECT id AS device_id, name, kind, site, district, latitude, longitude, status,\n"
    f"       CASE WHEN status = 'maintenance' THEN {MAINTENANCE} ELSE 0 END AS maintenance_rank\n"
    "FROM devices\n"
    "WHERE status <> 'retired' AND latitude IS NOT NULL AND longitude IS NOT NULL\n"
    "  AND district ~ '^${district:regex}$' AND site ~ '^${site:regex}$'"
    " AND id ~ '^${device:regex}$'\n"
    "ORDER BY id"
)
LAST_ALERT = (
    'SELECT last("level_rank") AS "alert_rank", last("level") AS "alert_level", '
    'last("state") AS "alert_state" FROM "raw"."alerts" WHERE $timeFilter AND '
    + TAG_FILTER
    + ' GROUP BY "device_id"'
)
LAST_LINK = (
    'SELECT last("state") AS "link" FROM "raw"."device_status" '
    'WHERE $timeFilter AND "device_id" =~ /^$device$/ GROUP BY "device_id"'
)


def _map() -> geomap.Panel:
    markers = (
        MapLayerOptions()
        .type("markers")
        .name("Perangkat")
        .location(
            FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .tooltip(True)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "kondisi", "fixed": "green"},
                    "size": {"fixed": 8},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                    "text": {"field": "device_id", "mode": "field"},
                    "textConfig": {"fontSize": 9, "offsetY": -12},
                },
            }
        )
    )
    return (
        geomap.Panel()
        .title("Peta perangkat")
        .description(
            "Every registered device at its registry coordinates (PostgreSQL datasource on "
            "the registry). Colour: blue in maintenance (registry), else the level rank of "
            "its last alert change (green normal, yellow waspada / sedang, orange siaga / "
            "tidak sehat, red awas, dark red berbahaya). The tooltip adds the last "
            "online/offline status; offline devices are listed in the table beside."
        )
        .datasource(MIXED)
        .targets(
            [
                SQL(DEVICES_SQL, "A"),
                InfluxQL(LAST_ALERT, "B").table(),
                InfluxQL(LAST_LINK, "C").table(),
            ]
        )
        .with_transformation(transform("joinByField", {"byField": "device_id", "mode": "outer"}))
        .with_transformation(
            transform(
                "calculateField",
                {
                    "mode": "reduceRow",
                    "reduce": {"reducer": "max", "include": ["alert_rank", "maintenance_rank"]},
                    "alias": "kondisi",
                    "replaceFields": False,
                },
            )
        )
        .thresholds(steps(*((None if r == 0 else r, c) for r, (_, c) in KONDISI.items())))
        .mappings(
            [
                dashboard.ValueMap(
                    options={
                        str(r): dashboard.ValueMappingResult(text=t, color=c, index=i)
                        for i, (r, (t, c)) in enumerate(KONDISI.items())
                    }
                )
            ]
        )
        # The SDK types lat/lon as int; Grafana takes any number.
        .view(geomap.MapViewConfig().id("coords").lat(-2.58).lon(120.95).zoom(10))  # type: ignore[arg-type]
        .basemap(MapLayerOptions().type("osm-standard").name("Peta"))
        .layers([markers])
        .span(16)
        .height(16)
    )


def build() -> dash.Dashboard:
    return (
        board(
            UID,
            "Pantau — Ringkasan Kota",
            "City overview: every device on the map, active alerts, throughput.",
        )
        .with_panel(_map())
        .with_panel(
            number(
                "Peringatan aktif per tingkat",
                "Alert changes to 'firing' in the range, by severity (info, warning, critical).",
                [
                    InfluxQL(
                        'SELECT count("level_rank") FROM "raw"."alerts" WHERE $timeFilter AND '
                        "\"state\" = 'firing' AND " + TAG_FILTER + ' GROUP BY "severity"'
                    ).alias("$tag_severity")
                ],
                "short",
                w=8,
            ).thresholds(steps((None, "green"), (1, "orange")))
        )
        .with_panel(
            number(
                "Pembacaan per detik",
                "Readings written to InfluxDB per second, all ingesters (Prometheus).",
                [
                    PromQL(
                        "sum(rate(pantau_ingest_readings_written_total[$__rate_interval]))"
                    ).legend_format("pembacaan/s")
                ],
                "reqps",
                w=8,
            )
        )
        .with_panel(
            number(
                "Perangkat melapor (15 menit)",
                "Devices with at least one reading in the last 15 minutes, per kind.",
                [
                    InfluxQL(
                        'SELECT count("last") FROM (SELECT last("seq") FROM ' + KINDS + " "
                        "WHERE time > now() - 15m AND " + TAG_FILTER + ' GROUP BY "device_id")'
                    ).alias("$measurement")
                ],
                "short",
                w=8,
            )
        )
        .with_panel(
            grid(
                "Perangkat luring atau dalam pemeliharaan",
                "Devices whose last status message says offline, and devices the registry has "
                "in maintenance.",
                [
                    SQL(
                        "SELECT id AS device_id, name, site, status FROM devices "
                        "WHERE status = 'maintenance' AND district ~ '^${district:regex}$' "
                        "ORDER BY id",
                        "A",
                    ),
                    InfluxQL(LAST_LINK, "B").table(),
                ],
                w=8,
                h=8,
            )
        )
        .with_panel(
            series(
                "Pembacaan per menit per jenis",
                "Readings stored per minute, per kind of device.",
                [
                    InfluxQL(
                        'SELECT count("seq") FROM '
                        + KINDS
                        + " WHERE $timeFilter AND "
                        + TAG_FILTER
                        + " GROUP BY time(1m) fill(0)"
                    ).alias("$measurement")
                ],
                "short",
                w=24,
            )
        )
    )
