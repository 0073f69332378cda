"""Sungai (rivers): each gauge's level against its Waspada / Siaga / Awas bands from the
registry, rate of rise and flow; the gauges of one river side by side, upstream first."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.models import common, dashboard

from dashboards.common import TAG_FILTER, board, field, source, steps
from dashboards.panels import bars, series, transform
from dashboards.queries import SQL, InfluxQL

UID = "pantau-rivers"
FILE = "rivers.json"

# Gauge ids are wl-<river>-<nn>, numbered upstream to downstream (the registry's naming rule
# for gauges), so sorting the ids puts a river's gauges in flow order.
GAUGE = '"device_id" =~ /^$gauge$/'
GAUGES_OF_RIVER = (
    'SHOW TAG VALUES FROM "water_level" WITH KEY = "device_id" WHERE "device_id" =~ /^wl-$river-/'
)

# The registry's per-gauge thresholds (devices.thresholds JSON, PostgreSQL datasource), turned
# into the panel's threshold steps by Grafana's "config from query results" transformation.
THRESHOLDS_SQL = (
    "SELECT (thresholds -> 'level_cm' ->> 'waspada')::float AS waspada,\n"
    "       (thresholds -> 'level_cm' ->> 'siaga')::float AS siaga,\n"
    "       (thresholds -> 'level_cm' ->> 'awas')::float AS awas\n"
    "FROM devices WHERE id = '$gauge'"
)


def _level_panel() -> timeseries.Panel:
    panel = series(
        "Tinggi muka air $gauge",
        "Water level (cm above the gauge zero) with the gauge's Waspada (yellow), Siaga "
        "(orange) and Awas (red) bands, read from the registry (devices.thresholds).",
        [
            InfluxQL(
                f"SELECT mean({field('level_cm')}) FROM {source('water_level')} "
                f"WHERE $timeFilter AND {GAUGE} GROUP BY time($__interval) fill(none)"
            ).alias("tinggi"),
            SQL(THRESHOLDS_SQL, "B"),
        ],
        "lengthcm",
        w=24,  # Grafana shares the row among the repeats (at most max_per_row)
        h=9,
    )
    return (
        panel.thresholds(steps((None, "green"), (0, "yellow"), (0, "orange"), (0, "red")))
        .thresholds_style(
            GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE_AND_AREA)
        )
        .with_transformation(
            transform(
                "configFromData",
                {
                    "configRefId": "B",
                    "mappings": [
                        {"fieldName": "waspada", "handlerKey": "threshold1"},
                        {"fieldName": "siaga", "handlerKey": "threshold1"},
                        {"fieldName": "awas", "handlerKey": "threshold1"},
                    ],
                },
            )
        )
        .repeat("gauge")
        .repeat_direction("h")
        .max_per_row(4)
    )


def build() -> dash.Dashboard:
    rivers = (
        dash.QueryVariable("river")
        .label("Sungai")
        .description("River, from the gauge ids (wl-<river>-<nn>)")
        .datasource(dashboard.DataSourceRef(type_val="influxdb", uid="pantau-influxdb"))
        .query('SHOW TAG VALUES FROM "water_level" WITH KEY = "device_id"')
        .regex("/^wl-([a-z]+)-[0-9]+$/")
        .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
    )
    gauges = (
        dash.QueryVariable("gauge")
        .label("Pos duga air")
        .description("The river's gauges, upstream first")
        .datasource(dashboard.DataSourceRef(type_val="influxdb", uid="pantau-influxdb"))
        .query(GAUGES_OF_RIVER)
        .multi(True)
        .include_all(True)
        .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
    )
    return (
        board(
            UID,
            "Pantau — Sungai",
            "River gauges: levels against the registry's warning bands, rate of rise, flow.",
            "water_level",
        )
        .with_variable(rivers)
        .with_variable(gauges)
        .with_row(dash.Row("Sungai $river, dari hulu ke hilir"))
        .with_panel(_level_panel())
        .with_panel(
            series(
                "Laju kenaikan",
                "Rate of rise of the water level, cm per hour (derivative of the mean per "
                "interval), for the river's gauges upstream to downstream: a wave shows first "
                "upstream.",
                [
                    InfluxQL(
                        f"SELECT derivative(mean({field('level_cm')}), 1h) FROM "
                        f'{source("water_level")} WHERE $timeFilter AND "device_id" =~ '
                        '/^wl-$river-/ GROUP BY time($__interval), "device_id" fill(none)'
                    ).alias("$tag_device_id")
                ],
                "suffix: cm/h",
            )
        )
        .with_panel(
            series(
                "Debit",
                "Discharge (m³/s) where the gauge has a rating curve.",
                [
                    InfluxQL(
                        f"SELECT mean({field('flow_m3s')}) FROM {source('water_level')} "
                        'WHERE $timeFilter AND "device_id" =~ /^wl-$river-/ '
                        'GROUP BY time($__interval), "device_id" fill(none)'
                    ).alias("$tag_device_id")
                ],
                "suffix: m³/s",
            )
        )
        .with_row(dash.Row("Semua pos duga air"))
        .with_panel(
            bars(
                "Tinggi muka air terakhir",
                "The last level of every gauge in the selected districts and sites.",
                [
                    InfluxQL(
                        'SELECT last("level_cm") FROM "raw"."water_level" WHERE $timeFilter '
                        f'AND {TAG_FILTER} GROUP BY "device_id"'
                    ).alias("$tag_device_id")
                ],
                "lengthcm",
                w=24,
                h=10,
            )
        )
    )
