"""The people-facing texts of an alert: Bahasa Indonesia first, English second, times in WITA.

One sentence each, built from the Alert alone (device, site, district, value, threshold,
trend, the next level up), so every channel — SSE, MQTT, webhook, e-mail — says the same.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.model import Alert, State, Trend

WITA = ZoneInfo("Asia/Makassar")

_LEVEL_ID = {
    "waspada": "Waspada",
    "siaga": "Siaga",
    "awas": "Awas",
    "baik": "Baik",
    "sedang": "Sedang",
    "tidak_sehat": "Tidak Sehat",
    "sangat_tidak_sehat": "Sangat Tidak Sehat",
    "berbahaya": "Berbahaya",
    "ringan": "Ringan",
    "lebat": "Lebat",
    "sangat_lebat": "Sangat Lebat",
    "ekstrem": "Ekstrem",
    "nodata": "Tidak ada data",
    "offline": "Luring",
    "anomaly": "Anomali",
    "congestion": "Kemacetan",
    "incident": "Insiden lalu lintas",
    "rate_of_rise": "Kenaikan cepat",
}
_LEVEL_EN = {
    "nodata": "No data",
    "offline": "Offline",
    "anomaly": "Anomaly",
    "congestion": "Congestion",
    "incident": "Traffic incident",
    "rate_of_rise": "Rapid rise",
}
_FIELD_ID = {
    "level_cm": "Tinggi muka air",
    "pm25_ugm3": "PM2.5",
    "pm10_ugm3": "PM10",
    "rainfall_mm": "Curah hujan",
    "avg_speed_kmh": "Kecepatan lalu lintas",
    "vehicle_count": "Jumlah kendaraan",
}
_FIELD_EN = {
    "level_cm": "Water level",
    "rainfall_mm": "Rainfall",
    "avg_speed_kmh": "Traffic speed",
    "vehicle_count": "Vehicle count",
}
_TREND_ID = {Trend.RISING: "naik", Trend.FALLING: "turun", Trend.STEADY: "tetap"}
_STATE_ID = {
    State.PENDING: "MENUNGGU",
    State.FIRING: "PERINGATAN",
    State.ACKNOWLEDGED: "DITANGANI",
    State.RESOLVED: "SELESAI",
}
_STATE_EN = {
    State.PENDING: "PENDING",
    State.FIRING: "ALERT",
    State.ACKNOWLEDGED: "ACKNOWLEDGED",
    State.RESOLVED: "RESOLVED",
}


_LADDERS = {"river_level", "ispu_pm25", "ispu_pm10", "rain_daily", "rain_hourly"}


def level_name_id(level: str) -> str:
    return _LEVEL_ID.get(level, level.replace("_", " ").title())


def level_name_en(level: str) -> str:
    return _LEVEL_EN.get(level, level_name_id(level))


def wita(value: datetime) -> str:
    return value.astimezone(WITA).strftime("%d-%m-%Y %H:%M WITA")


def _number(value: float | None, unit: str | None) -> str:
    if value is None:
        return ""
    shown = f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{shown} {unit}" if unit else shown


def render(alert: Alert) -> dict[str, str]:
    """{"id": ..., "en": ...} for the alert as it is now."""
    device = alert.device
    place = device.site or device.name or device.device_id
    at = wita(alert.resolved_at or alert.updated_at)
    level_id, level_en = level_name_id(alert.level), level_name_en(alert.level)
    field_id = _FIELD_ID.get(alert.field or "", alert.field or "")
    field_en = _FIELD_EN.get(alert.field or "", field_id)
    value = _number(alert.value, alert.unit)
    threshold = _number(alert.threshold, alert.unit)
    district_id = f", Kec. {device.district}" if device.district else ""
    district_en = f", {device.district} district" if device.district else ""

    head_id = f"{_STATE_ID[alert.state]} {level_id.upper()}"
    head_en = f"{_STATE_EN[alert.state]} {level_en.upper()}"
    where_id = f"di {place} ({device.device_id}){district_id}, {at}"
    where_en = f"at {place} ({device.device_id}){district_en}, {at}"
    if alert.state is State.RESOLVED:
        return {
            "id": f"{head_id}: {field_id or 'kondisi'} {where_id} kembali normal"
            + (f" ({value})." if value else "."),
            "en": f"{head_en}: {field_en or 'condition'} {where_en} back to normal"
            + (f" ({value})." if value else "."),
        }
    parts_id = [f"{head_id}: {field_id} {value} {where_id}".replace("  ", " ")]
    parts_en = [f"{head_en}: {field_en} {value} {where_en}".replace("  ", " ")]
    if threshold:
        parts_id.append(f"batas {level_id} {threshold}")
        parts_en.append(f"{level_en} threshold {threshold}")
    if alert.trend is not None:
        parts_id.append(f"tren {_TREND_ID[alert.trend]}")
        parts_en.append(f"trend {alert.trend.value}")
    if alert.next_level:
        parts_id.append(f"tingkat berikutnya {level_name_id(alert.next_level)}")
        parts_en.append(f"next level {level_name_en(alert.next_level)}")
    elif alert.level_rank > 0 and alert.rule in _LADDERS:
        parts_id.append("tingkat tertinggi")
        parts_en.append("highest level")
    if alert.reason:
        parts_id.append(f"sebab {alert.reason}")
        parts_en.append(f"reason {alert.reason}")
    if alert.acknowledged_by:
        parts_id.append(f"ditangani oleh {alert.acknowledged_by}")
        parts_en.append(f"acknowledged by {alert.acknowledged_by}")
    return {"id": "; ".join(parts_id) + ".", "en": "; ".join(parts_en) + "."}
