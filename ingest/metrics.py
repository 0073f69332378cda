"""The ingester's Prometheus metrics, on a registry of its own (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "pantau_ingest_messages_received", "MQTT messages received", registry=r
        )
        self.redelivered = Counter(
            "pantau_ingest_messages_redelivered",
            "Messages the broker marked as redelivered (DUP)",
            registry=r,
        )
        self.written = Counter(
            "pantau_ingest_readings_written", "Readings accepted by InfluxDB", registry=r
        )
        self.rejected = Counter(
            "pantau_ingest_messages_rejected", "Messages dead-lettered", ["reason"], registry=r
        )
        self.acked = Counter("pantau_ingest_messages_acked", "PUBACKs sent", registry=r)
        self.write_retries = Counter(
            "pantau_ingest_write_retries", "InfluxDB write retries", ["error"], registry=r
        )
        self.batch_size = Histogram(
            "pantau_ingest_batch_points",
            "Points per InfluxDB write",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000),
            registry=r,
        )
        self.write_latency = Histogram(
            "pantau_ingest_write_seconds",
            "Time to write one batch, retries included",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120),
            registry=r,
        )
        self.anomalies = Counter(
            "pantau_ingest_anomaly_events",
            "Readings whose anomaly score crossed the threshold",
            registry=r,
        )
        self.backlog = Gauge(
            "pantau_ingest_backlog_messages",
            "Messages received but not yet acknowledged",
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "pantau_ingest_mqtt_connected", "1 when connected to MQTT", registry=r
        )
        self.influx_up = Gauge(
            "pantau_ingest_influx_up", "1 when InfluxDB accepts writes", registry=r
        )
        # Health signals (ingest/lag.py); the broker's own counters are in broker_stats.py.
        self.seq_gaps = Counter(
            "pantau_ingest_seq_gaps",
            "Readings missing from the devices' sequence numbers (a seq stepped forward by more "
            "than 1 and the device's clock moved on enough to have taken them): lost before the "
            "ingester, by a device or by a broker dropping",
            registry=r,
        )
        self.seq_jumps = Counter(
            "pantau_ingest_seq_jumps",
            "Sequence jumps: a device's numbering restarted, or leapt further than its clock "
            "explains (a new baseline; nothing counted as missing)",
            registry=r,
        )
        self.lag = Gauge(
            "pantau_ingest_lag_seconds",
            "Commit time minus the arrival time at the ingester of the oldest message of the "
            "last batch committed (0 when caught up and idle)",
            registry=r,
        )
