"""The query types the SDK does not ship: InfluxQL (InfluxDB 1.x API) and SQL (the registry).

grafana-foundation-sdk has no InfluxDB or PostgreSQL query model, so these are small
`Dataquery` variants of our own in the SDK's style (a model with `to_json`/`from_json`, a
builder), registered with the SDK's runtime so `Dashboard.from_json` reads them back.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

# The datasources provisioned by dashboards/provisioning/datasources.yaml (fixed uids).
INFLUX = dashboard.DataSourceRef(type_val="influxdb", uid="pantau-influxdb")
REGISTRY = dashboard.DataSourceRef(type_val="grafana-postgresql-datasource", uid="pantau-registry")
PROMETHEUS = dashboard.DataSourceRef(type_val="prometheus", uid="pantau-prometheus")
# A panel mixing datasources; no type, so the SDK reads each query by its own datasource.
MIXED = dashboard.DataSourceRef(uid="-- Mixed --")


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL query as Grafana's InfluxDB datasource stores it (`rawQuery: true`)."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "",
        alias: str | None = None,
        result_format: str = "time_series",
        hide: bool | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.alias = alias
        self.result_format = result_format
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": INFLUX,
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        return cls(
            query=data.get("query", ""),
            ref_id=data.get("refId", ""),
            alias=data.get("alias"),
            result_format=data.get("resultFormat", "time_series"),
            hide=data.get("hide"),
        )


class SQLQuery(cogvariants.Dataquery):
    """A raw SQL query for Grafana's PostgreSQL datasource (`editorMode: code`)."""

    def __init__(
        self,
        raw_sql: str = "",
        ref_id: str = "",
        format_val: str = "table",
        hide: bool | None = None,
    ) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.format_val = format_val
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": REGISTRY,
            "editorMode": "code",
            "format": self.format_val,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        return cls(
            raw_sql=data.get("rawSql", ""),
            ref_id=data.get("refId", ""),
            format_val=data.get("format", "table"),
            hide=data.get("hide"),
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of an `InfluxQLQuery`: `InfluxQL("SELECT ...").alias("$tag_device_id")`."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLQuery(query=query, ref_id=ref_id)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def alias(self, alias: str) -> typing.Self:
        self._internal.alias = alias
        return self

    def table(self) -> typing.Self:
        self._internal.result_format = "table"
        return self

    def hidden(self) -> typing.Self:
        self._internal.hide = True
        return self


class SQL(cogbuilder.Builder[SQLQuery]):
    """Builder of a `SQLQuery` against the registry (PostgreSQL)."""

    def __init__(self, raw_sql: str, ref_id: str = "A") -> None:
        self._internal = SQLQuery(raw_sql=raw_sql, ref_id=ref_id)

    def build(self) -> SQLQuery:
        return self._internal

    def hidden(self) -> typing.Self:
        self._internal.hide = True
        return self

    def time_series(self) -> typing.Self:
        self._internal.format_val = "time_series"
        return self


def register_query_variants() -> None:
    """Teach the SDK's runtime to read our query types back (`Dashboard.from_json`)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier="influxdb", from_json_hook=InfluxQLQuery.from_json)
    )
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier="grafana-postgresql-datasource", from_json_hook=SQLQuery.from_json
        )
    )


def PrometheusQuery(expr: str, ref_id: str = "A") -> prometheus.Dataquery:  # noqa: N802
    """The SDK's own Prometheus query, on Pantau's Prometheus datasource."""
    return prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(PROMETHEUS).range()
