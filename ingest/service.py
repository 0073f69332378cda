"""Wires the ingester from settings and runs it until SIGTERM/SIGINT: `pantau ingest`."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from types import FrameType

from alerts.influx_points import InfluxAlertPoints
from alerts.mqtt_state import MqttAlertState
from alerts.rules import load_rules
from alerts.store import AlertStore
from devices.catalog import default_catalog
from devices.directory import DeviceDirectory
from devices.registry import Registry
from ingest.alert_stage import AlertStage
from ingest.broker_stats import BrokerStats
from ingest.calibrate import CalibrationStage, DeviceTagStage
from ingest.dead_letters import DeadLetterStore
from ingest.detect import DetectionStage
from ingest.health import HealthServer
from ingest.lag import GapReport, OverloadWatch
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import MqttSource
from ingest.pipeline import Pipeline, ReadingStage
from ingest.registry_gate import RegistryKindResolver
from ingest.sink import InfluxSink, wait_for_influx
from ingest.validate import Validator
from pantau.influxdb import InfluxClient, InfluxUnavailableError
from pantau.mqtt_publish import Qos1Publisher
from pantau.retry import RetryStoppedError, retry_policy
from pantau.settings import Settings
from pantau.sql import make_engine, migrate

log = logging.getLogger(__name__)


def subscription_topics(settings: Settings) -> list[str]:
    prefix = settings.mqtt.topic_prefix.rstrip("/")
    topics = [f"{prefix}/+/telemetry", f"{prefix}/+/status"]
    if settings.mqtt.shared_group:
        topics = [f"$share/{settings.mqtt.shared_group}/{t}" for t in topics]
    return topics


class IngestService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.metrics = IngestMetrics()
        self.influx = InfluxClient(settings.influx)
        self.engine = make_engine(settings.database.url)
        self.dead_letters = DeadLetterStore(self.engine, settings.mqtt.topic_prefix)
        self.sink = InfluxSink(
            settings.influx,
            self.influx,
            stop=self.stop,
            on_health=lambda ok: self.metrics.influx_up.set(1 if ok else 0),
            on_retry=lambda err: self.metrics.write_retries.labels(err).inc(),
        )
        self.source = MqttSource(
            settings.mqtt,
            subscription_topics(settings),
            on_state_change=lambda up: self.metrics.mqtt_connected.set(1 if up else 0),
            max_pending=settings.ingest.max_pending_messages,
            max_pending_bytes=settings.ingest.max_pending_bytes,
        )
        # The registry, in memory: kind and status per device, calibration, tags.
        self.directory = DeviceDirectory(
            Registry(self.engine, default_catalog()),
            settings.registry.refresh_interval_s,
            settings.registry.sqlite_poll_interval_s,
        )
        self.validator = Validator(
            default_catalog(),
            future_tolerance_s=settings.ingest.future_tolerance_s,
            retention_days=settings.influx.retention_days,
        )
        self.validator.kind_resolver = RegistryKindResolver(
            self.directory,
            require_registered=settings.ingest.require_registered_devices,
            infer=self.validator.kind_from_catalog,
            catch_up=self.directory.catch_up,
        )
        self.pipeline = Pipeline(
            self.source,
            self.validator,
            self.sink,
            self.dead_letters,
            topic_prefix=settings.mqtt.topic_prefix,
            batch_max_points=settings.influx.batch_max_points,
            flush_interval_s=settings.influx.flush_interval_s,
            max_payload_bytes=settings.ingest.max_payload_bytes,
            batches_in_flight=settings.ingest.batches_in_flight,
            stage_interval_s=settings.ingest.stage_interval_s,
            stages=self._stages(settings),
            metrics=self.metrics,
            stop=self.stop,
            # A member of a shared subscription sees only part of each device's stream.
            seq_gaps=not settings.mqtt.shared_group,
        )
        self.broker_stats = (
            BrokerStats(settings.mqtt, self.metrics.registry)
            if settings.mqtt.broker_stats
            else None
        )
        self.overload = OverloadWatch(
            lag_warn_s=settings.ingest.lag_warn_s,
            backlog_warn_messages=settings.ingest.backlog_warn_messages,
            interval_s=settings.ingest.overload_log_interval_s,
        )
        self.gap_report = GapReport(interval_s=settings.ingest.overload_log_interval_s)
        self.health: HealthServer | None = None

    def _stages(self, settings: Settings) -> list[ReadingStage]:
        stages: list[ReadingStage] = [
            CalibrationStage(self.directory),
            DeviceTagStage(self.directory),
        ]
        self.detector: DetectionStage | None = None
        if settings.detect.enabled:
            snapshot = (
                settings.stack.var_dir.resolve() / "detector" / f"{settings.mqtt.client_id}.npz"
            )
            self.detector = DetectionStage(
                default_catalog(),
                threshold=settings.detect.threshold,
                snapshot_path=snapshot,
                snapshot_interval_s=settings.detect.snapshot_interval_s,
            )
            stages.append(self.detector)
        self.alerts: AlertStage | None = None
        if settings.alerts.enabled:
            self.alert_publisher = Qos1Publisher(
                settings.mqtt.host,
                settings.mqtt.port,
                f"{settings.mqtt.client_id}-alerts",
                window=1000,
                username=settings.mqtt.username,
                password=settings.mqtt.password.get_secret_value()
                if settings.mqtt.password
                else None,
            )
            self.alert_mqtt = MqttAlertState(self.alert_publisher, settings.alerts.mqtt_topic)
            self.alerts = AlertStage(
                load_rules(settings.alerts.rules_path),
                self.directory,
                AlertStore(self.engine),
                notifiers=[self.alert_mqtt.on_events, InfluxAlertPoints(self.influx).on_events],
                tick_interval_s=settings.alerts.tick_interval_s,
            )
            stages.append(self.alerts)
        return stages

    def _start_alerts(self) -> None:
        """Rebuild the alert state from SQL, connect its publisher, start its timer."""
        if self.alerts is None:
            return
        try:
            self.alert_publisher.connect()
        except Exception as exc:  # SQL keeps every change; the state is republished at start
            log.warning("alert publisher cannot connect yet: %s", exc)
        active = self.alerts.store.active()
        self.alert_mqtt.rebuild(active)
        watched = [
            device.id
            for device in self.directory.registry.current_state()[1]
            if device.status == "active"
        ]
        self.alerts.start(watched)

    def readiness(self) -> dict[str, bool]:
        return {
            "mqtt": self.source.connected,
            "influx": self.sink.healthy,
            "registry": self.directory.revision >= 0,  # loaded once; then serves its snapshot
        }

    def prepare(self) -> None:
        """Wait for InfluxDB, create the database and retention policy, the SQL tables."""
        url = self.settings.influx.url
        prepare_database = self.settings.influx.prepare_database

        def prepare_influx() -> None:
            if not wait_for_influx(self.influx, self.stop, 5.0):
                raise InfluxUnavailableError(f"waiting for InfluxDB at {url}")
            if prepare_database:  # else InfluxDB 2.x/3.x: buckets and mappings are made there
                self.influx.ensure_database()

        def before_retry(exc: BaseException, wait_s: float) -> None:
            log.warning("cannot prepare InfluxDB yet: %s; retrying in %.1fs", exc, wait_s)

        retry = retry_policy(
            Exception, initial_s=1.0, max_s=5.0, stop=self.stop, before_retry=before_retry
        )
        with contextlib.suppress(RetryStoppedError):  # stopping: the pipeline sees it too
            retry(prepare_influx)
        self.metrics.influx_up.set(1)
        migrate(self.engine)
        self.directory.start()
        self._start_alerts()

    def run(self) -> None:
        if self.settings.ingest.metrics_port:
            self.health = HealthServer(
                self.settings.ingest.metrics_host,
                self.settings.ingest.metrics_port,
                self.metrics.registry,
                self.readiness,
            )
            self.health.start()
        self.prepare()
        self.source.start()
        if self.broker_stats is not None:
            self.broker_stats.start()
        reporter = threading.Thread(target=self._report, name="status", daemon=True)
        reporter.start()
        log.info(
            "ingesting from %s into %s/%s",
            self.settings.mqtt.url,
            self.settings.influx.url,
            self.settings.influx.database,
        )
        try:
            self.pipeline.run()
        finally:
            if self.detector is not None:
                # Both pipeline threads have ended, so the engine is quiet: save what it learned.
                try:
                    self.detector.snapshot()
                except OSError as exc:
                    log.error("cannot save detector state: %s", exc)
            self.source.stop()
            if self.broker_stats is not None:
                self.broker_stats.stop()
            if self.alerts is not None:
                self.alerts.stop()
                with contextlib.suppress(Exception):
                    self.alert_publisher.close(timeout_s=2.0)
            self.directory.stop()
            self.sink.close()
            if self.health:
                self.health.stop()
            self.engine.dispose()
            log.info(
                "ingester stopped: written=%d rejected=%d acked=%d",
                self.pipeline.written,
                self.pipeline.rejected,
                self.pipeline.acked,
            )

    def _active_alerts(self) -> str:
        """Active (unresolved) alert episodes, for the status line; `-` when alerting is off."""
        if self.alerts is None:
            return "-"
        try:
            return str(self.alerts.store.count_active())
        except Exception:  # the database is away: the line still goes out
            return "?"

    def _report(self) -> None:
        interval = self.settings.ingest.status_interval_s
        last_received = last_written = last_events = last_committed = 0
        while not self.stop.wait(interval):
            received = self.source.received
            written = self.pipeline.written
            committed = self.pipeline.committed
            backlog = received - committed
            self.metrics.backlog.set(backlog)
            if self.detector is not None:
                events = self.detector.events_total
                self.metrics.anomalies.inc(events - last_events)
                last_events = events
            counter = self.pipeline.gaps
            gaps = counter.missing if counter is not None else 0
            # The lag is measured at each commit; between commits it is only news if one
            # happened since the last report.
            lag_s = self.pipeline.lag_s if committed > last_committed else None
            if received == last_received and backlog == 0:
                # Caught up and nothing arriving: no reading waits, so no lag — not the lag of
                # the last batch of a burst long over.
                self.metrics.lag.set(0)
            log.info(
                "received=%d (%.0f/s) written=%d (%.0f/s) rejected=%d backlog=%d gaps=%d "
                "lag=%s mqtt=%s influx=%s alerts=%s",
                received,
                (received - last_received) / interval,
                written,
                (written - last_written) / interval,
                self.pipeline.rejected,
                backlog,
                gaps,
                "-" if lag_s is None else f"{lag_s:.1f}s",
                "up" if self.source.connected else "down",
                "up" if self.sink.healthy else "down",
                self._active_alerts(),
            )
            last_received, last_written, last_committed = received, written, committed
            stored = self.broker_stats.stored if self.broker_stats is not None else None
            self.overload.check(
                dropped=self.broker_stats.dropped if self.broker_stats is not None else None,
                backlog=backlog + (stored or 0),
                lag_s=lag_s,
            )
            if counter is not None:  # the devices' matter, reported apart from overload
                self.gap_report.check(gaps=gaps, jumps=counter.jumps, devices=counter.take_recent())

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stop.set()


def run_ingester(settings: Settings) -> None:
    service = IngestService(settings)
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    started = time.monotonic()
    service.run()
    log.debug("ran %.1fs", time.monotonic() - started)
