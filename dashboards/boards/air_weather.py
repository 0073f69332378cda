"""Udara dan Cuaca (air and weather): PM2.5 / PM10 coloured by the Indonesian ISPU
categories, rain by BMKG's hourly intensity categories, temperature, humidity, pressure."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.models import common

from dashboards.common import TAG_FILTER, board, field, source, steps
from dashboards.panels import bars, series
from dashboards.queries import InfluxQL

UID = "pantau-air-weather"
FILE = "air-weather.json"

# ISPU (Indeks Standar Pencemar Udara, PermenLHK P.14/2020) concentration breakpoints:
# baik (green), sedang (blue), tidak sehat (yellow), sangat tidak sehat (red), berbahaya (black).
ISPU_PM25 = steps(
    (None, "green"), (15.5, "blue"), (55.4, "yellow"), (150.4, "red"), (250.4, "black")
)
ISPU_PM10 = steps((None, "green"), (50, "blue"), (150, "yellow"), (350, "red"), (420, "black"))
# BMKG rain intensity per hour: ringan < 5, sedang 5-10, lebat 10-20, sangat lebat > 20 mm.
BMKG_RAIN_HOURLY = steps((None, "green"), (5, "yellow"), (10, "orange"), (20, "red"))


def _mean(name: str, measurement: str = "environment") -> InfluxQL:
    return InfluxQL(
        f"SELECT mean({field(name)}) FROM {source(measurement)} WHERE $timeFilter AND "
        f'{TAG_FILTER} GROUP BY time($__interval), "device_id" fill(none)'
    ).alias("$tag_device_id")


def _banded(panel_title: str, description: str, name: str, unit: str, bands: object) -> dash.Panel:
    panel = series(panel_title, description, [_mean(name)], unit)
    return panel.thresholds(bands).thresholds_style(  # type: ignore[arg-type, return-value]
        GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.AREA)
    )


def build() -> dash.Dashboard:
    last_pm25 = InfluxQL(
        'SELECT last("pm25_ugm3") FROM "raw"."environment" WHERE $timeFilter AND '
        f'{TAG_FILTER} GROUP BY "device_id"'
    ).alias("$tag_device_id")
    rain = InfluxQL(
        'SELECT sum("rainfall_mm") FROM "raw"."environment" WHERE $timeFilter AND '
        f'{TAG_FILTER} GROUP BY time(1h), "device_id" fill(0)'
    ).alias("$tag_device_id")
    return (
        board(
            UID,
            "Pantau — Udara dan Cuaca",
            "Air quality by ISPU category, rain by BMKG category, weather.",
            "environment",
        )
        .with_panel(
            _banded(
                "PM2.5",
                "PM2.5 mass concentration, coloured by ISPU category: baik, sedang, tidak "
                "sehat, sangat tidak sehat, berbahaya (PermenLHK P.14/2020 breakpoints).",
                "pm25_ugm3",
                "conμgm3",
                ISPU_PM25,
            )
        )
        .with_panel(
            _banded(
                "PM10",
                "PM10 mass concentration, coloured by ISPU category.",
                "pm10_ugm3",
                "conμgm3",
                ISPU_PM10,
            )
        )
        .with_panel(
            bars(
                "PM2.5 terakhir per stasiun",
                "The last PM2.5 of every station, coloured by ISPU category.",
                [last_pm25],
                "conμgm3",
                w=8,
            ).thresholds(ISPU_PM25)
        )
        .with_panel(
            series(
                "Curah hujan per jam",
                "Rain per hour (sum of the readings' rain since the previous reading), "
                "coloured by BMKG's hourly categories: ringan < 5, sedang 5-10, lebat 10-20, "
                "sangat lebat > 20 mm. Always from raw: the hourly roll-up keeps means, not sums.",
                [rain],
                "lengthmm",
                w=16,
            )
            .thresholds(BMKG_RAIN_HOURLY)
            .draw_style(common.GraphDrawStyle.BARS)
            .thresholds_style(
                GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
            )
        )
        .with_panel(
            series("Suhu udara", "Air temperature.", [_mean("temperature_c")], "celsius", w=8)
        )
        .with_panel(
            series("Kelembapan", "Relative humidity.", [_mean("humidity_pct")], "humidity", w=8)
        )
        .with_panel(
            series("Tekanan udara", "Air pressure.", [_mean("pressure_hpa")], "pressurehpa", w=8)
        )
    )
