"""Panel constructors in Pantau's style: each takes a title (Indonesian), a description
(English) and its queries, and sets the size on the 24-column grid."""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders.common import VizLegendOptions
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common, dashboard

from dashboards.queries import INFLUX, MIXED, PROMETHEUS, REGISTRY

Query = cogbuilder.Builder[cogvariants.Dataquery]
Panel = TypeVar("Panel", timeseries.Panel, stat.Panel, bargauge.Panel, table.Panel)


def _datasource(queries: list[Query]) -> dashboard.DataSourceRef:
    kinds = {type(q.build()).__name__ for q in queries}
    if kinds == {"SQLQuery"}:
        return REGISTRY
    if kinds == {"InfluxQLQuery"}:
        return INFLUX
    if kinds == {"Dataquery"}:  # the SDK's Prometheus query
        return PROMETHEUS
    return MIXED


def _framed(
    panel: Panel, title: str, description: str, queries: list[Query], w: int, h: int
) -> Panel:
    """What every panel sets: title, description, its queries and their datasource, size."""
    return (
        panel.title(title)
        .description(description)
        .datasource(_datasource(queries))
        .targets(queries)
        .span(w)
        .height(h)
    )


def series(
    title: str, description: str, queries: list[Query], unit: str, w: int = 12, h: int = 8
) -> timeseries.Panel:
    """A time series; legend as a table with last and max."""
    return (
        _framed(timeseries.Panel(), title, description, queries, w, h)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .span_nulls(False)
        .legend(_legend())
    )


def _legend() -> cogbuilder.Builder[common.VizLegendOptions]:
    return (
        VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def number(
    title: str, description: str, queries: list[Query], unit: str, w: int = 6, h: int = 4
) -> stat.Panel:
    """A single value (the last one), with a sparkline."""
    return (
        _framed(stat.Panel(), title, description, queries, w, h)
        .unit(unit)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
    )


def bars(
    title: str, description: str, queries: list[Query], unit: str, w: int = 12, h: int = 8
) -> bargauge.Panel:
    """One bar per series (per device), last value."""
    return (
        _framed(bargauge.Panel(), title, description, queries, w, h)
        .unit(unit)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
    )


def grid(
    title: str, description: str, queries: list[Query], w: int = 12, h: int = 8
) -> table.Panel:
    """A table."""
    return _framed(table.Panel(), title, description, queries, w, h).filterable(True)


def row(title: str) -> dash.Row:
    return dash.Row(title)


def transform(id_val: str, options: dict[str, object]) -> dashboard.DataTransformerConfig:
    return dashboard.DataTransformerConfig(id_val=id_val, options=options)
