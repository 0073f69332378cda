"""What every Pantau dashboard shares: time zone, template variables, annotations, filters.

Language: panel and dashboard titles are Indonesian (what the operators in Luwu Timur read
on the wall screen), descriptions are English (what the maintainers and the next engineer
read in the panel's info tooltip). One language per role, no language variable: Grafana
cannot switch panel titles by a variable without duplicating every title as a query.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard

from dashboards.queries import INFLUX

TIMEZONE = "Asia/Makassar"  # WITA: what people in Luwu Timur read on a clock
FOLDER = "Pantau"
TAG = "pantau"

# A reading series is selected by the three template variables; `All` is `.*` so the same
# regex clause works for one value, several ((a|b)) or all.
TAG_FILTER = '"district" =~ /^$district$/ AND "site" =~ /^$site$/ AND "device_id" =~ /^$device$/'


def field(name: str) -> str:
    """A field selector that reads `name` from `raw` and `mean_<name>` from `hourly`.

    The `hourly` roll-up (continuous query `pantau_hourly_rollup`) stores `mean_<field>`,
    `min_<field>`, `max_<field>`; one regex picks whichever the `$rp` retention policy has.
    """
    return f"/^(mean_)?{name}$/"


def source(measurement: str) -> str:
    """`"$rp"."<measurement>"`: the retention policy the `rp` variable chose."""
    return f'"$rp"."{measurement}"'


def variables(measurement: str | None = None) -> list[cogbuilder.Builder[dashboard.VariableModel]]:
    """district → site → device (each narrowed by the one before), and the retention policy."""
    frm = f' FROM "{measurement}"' if measurement else ""

    def tag_variable(
        name: str, label: str, key: str, where: str, description: str
    ) -> dash.QueryVariable:
        query = f'SHOW TAG VALUES{frm} WITH KEY = "{key}"' + (f" WHERE {where}" if where else "")
        return (
            dash.QueryVariable(name)
            .label(label)
            .description(description)
            .datasource(INFLUX)
            .query(query)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
        )

    return [
        tag_variable("district", "Kecamatan", "district", "", "District (kecamatan) tag"),
        tag_variable(
            "site",
            "Lokasi",
            "site",
            '"district" =~ /^$district$/',
            "Site tag, within the districts",
        ),
        tag_variable(
            "device",
            "Perangkat",
            "device_id",
            '"district" =~ /^$district$/ AND "site" =~ /^$site$/',
            "Device id, within the sites",
        ),
        dash.CustomVariable("rp")
        .label("Resolusi")
        .description(
            "Retention policy: raw (every reading, 400 days) or hourly (mean/min/max per hour, "
            "10 years). Pick hourly for ranges beyond a few weeks."
        )
        .values("raw,hourly")
        .current(dashboard.VariableOption(text="raw", value="raw", selected=True)),
    ]


class InfluxAnnotationTarget(dashboard.AnnotationTarget):
    """An InfluxQL annotation query (Grafana's InfluxDB datasource reads `target.query`).

    The SDK's AnnotationTarget models only the built-in Grafana annotations (tags, limit),
    so the InfluxQL fields are added here; the SDK model keeps the rest.
    """

    def __init__(self, query: str, text_column: str, tags_column: str) -> None:
        super().__init__(limit=100, match_any=False, tags=[], type_val="tags")
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        return {
            "fromAnnotations": True,
            "query": self.query,
            "rawQuery": True,
            "refId": "Anno",
            "tagsColumn": self.tags_column,
            "textColumn": self.text_column,
            "textEditor": True,
        }


class _Target(cogbuilder.Builder[dashboard.AnnotationTarget]):
    def __init__(self, target: InfluxAnnotationTarget) -> None:
        self._internal = target

    def build(self) -> dashboard.AnnotationTarget:
        return self._internal


# The `alerts` measurement (alerting, alerts/): one point per state or level change, tags
# device_id, district, site, rule, severity; fields level, level_rank, state, value,
# threshold, text, alert_id.
ALERTS_ANNOTATION_QUERY = (
    'SELECT "text", "level", "state", "value", "threshold", "severity", "device_id" '
    'FROM "raw"."alerts" '
    "WHERE $timeFilter AND " + TAG_FILTER
)
# Points whose anomaly score crossed the detector's threshold carry `anomaly_reason`.
ANOMALY_ANNOTATION_QUERY = (
    'SELECT "anomaly_reason", "anomaly_score", "device_id" '
    'FROM "raw"./^(water_level|environment|traffic)$/ '
    "WHERE $timeFilter AND \"anomaly_reason\" <> '' AND " + TAG_FILTER
)


def event_annotations(filtered: bool = True) -> list[cogbuilder.Builder[dashboard.AnnotationQuery]]:
    """Alerts (every state/level change) and anomaly events, on every time panel; narrowed
    by the district/site/device variables where the dashboard has them."""
    alerts, anomalies = ALERTS_ANNOTATION_QUERY, ANOMALY_ANNOTATION_QUERY
    if not filtered:
        alerts = alerts.removesuffix(" AND " + TAG_FILTER)
        anomalies = anomalies.removesuffix(" AND " + TAG_FILTER)
    return [
        dash.AnnotationQuery()
        .name("Peringatan")
        .datasource(INFLUX)
        .enable(True)
        .icon_color("red")
        .target(_Target(InfluxAnnotationTarget(alerts, "text", "severity,level,state,device_id"))),
        dash.AnnotationQuery()
        .name("Anomali")
        .datasource(INFLUX)
        .enable(True)
        .icon_color("purple")
        .target(_Target(InfluxAnnotationTarget(anomalies, "anomaly_reason", "device_id"))),
    ]


def board(uid: str, title: str, description: str, measurement: str | None = None) -> dash.Dashboard:
    """A dashboard with Pantau's defaults: WITA, shared crosshair, variables, annotations."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone(TIMEZONE)
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .variables(variables(measurement))
        .annotations(event_annotations())
    )


def steps(*pairs: tuple[float | None, str]) -> dash.ThresholdsConfig:
    """Absolute threshold steps: `steps((None, "green"), (35.5, "yellow"), ...)`."""
    return (
        dash.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=value, color=color) for value, color in pairs])
    )
