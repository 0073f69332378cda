"""The ingester: MQTT in, validated and scored readings out to InfluxDB, acknowledged after.

Stages (each its own module): `mqtt_source` (subscribe, hand over, acknowledge in order) →
`decode` (payload bytes → records) → `validate` (records → typed `Reading`s, or a rejection)
→ `sink` (line-protocol batches to InfluxDB) and `dead_letters` (rejections, durably) →
acknowledgement. `pipeline` runs them; `service` wires them from settings.
"""
