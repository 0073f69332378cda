"""Pantau's one typed settings object.

Every option lives here, nested per component (``mqtt``, ``influx``, ``database``, ``api``,
``ingest``, ``registry``, ``simulate``, ``stack``, ``notify`` ...), with its unit in its name
and its default documented where it is defined. Values come from the environment with the
prefix ``PANTAU_`` and ``__`` between levels (``PANTAU_INFLUX__BATCH_MAX_POINTS=10000``), or
from a ``.env`` file.

Components receive their slice through their constructor; no stage reads the environment.
``.env.example`` is generated from this module (``pantau settings env-example``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttSettings(BaseModel):
    """The MQTT broker the ingester subscribes to and the simulators publish to."""

    url: Annotated[
        str,
        Field(
            description="Broker URL, mqtt://host:port. Unset: the Mosquitto `pantau up` starts "
            "on 127.0.0.1:<stack.mosquitto_port>; set: use that existing broker instead."
        ),
    ] = ""
    username: Annotated[
        str | None, Field(description="Username for the ingester's connection (none: anonymous).")
    ] = None
    password: Annotated[SecretStr | None, Field(description="Password for `username`.")] = None
    auth: Annotated[
        bool,
        Field(
            description="Broker access control from the registry. On: the stack's Mosquitto "
            "refuses anonymous clients, gets a password_file and acl_file rendered from the "
            "registry (each device may publish only under <prefix>/<its id>/), and the "
            "ingester, API and simulators get service accounts of their own. Off: anonymous."
        ),
    ] = True
    client_id: Annotated[
        str,
        Field(
            description="Fixed MQTT client id of this ingester. It names the persistent session "
            "the broker keeps while the ingester is down, so it must stay the same across restarts "
            "and differ between ingesters sharing a subscription."
        ),
    ] = "pantau-ingest-1"
    topic_prefix: Annotated[
        str, Field(description="Devices publish on <prefix>/<device_id>/telemetry and /status.")
    ] = "pantau/devices"
    shared_group: Annotated[
        str | None,
        Field(
            description="MQTT v5 shared-subscription group; when set the ingester subscribes to "
            "$share/<group>/<prefix>/+/telemetry so several ingesters split the load."
        ),
    ] = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600, description="Keepalive, seconds.")] = 30
    clean_start: Annotated[
        bool,
        Field(
            description="Start with a clean session, discarding what the broker queued while "
            "the ingester was down. Only for demonstrating that loss; never in production.",
        ),
    ] = False
    session_expiry_s: Annotated[
        int,
        Field(
            ge=0,
            description="Session Expiry Interval, seconds: how long the broker keeps this "
            "ingester's session and queued QoS 1 messages while it is disconnected.",
        ),
    ] = 7 * 24 * 3600
    receive_maximum: Annotated[
        int,
        Field(
            ge=1,
            le=65535,
            description="MQTT v5 Receive Maximum: QoS 1 messages the broker may have in flight "
            "to the ingester before it must wait for PUBACKs. At least the batch size.",
        ),
    ] = 20000
    reconnect_min_delay_s: Annotated[
        float, Field(gt=0, description="First reconnect back-off, seconds.")
    ] = 0.5
    reconnect_max_delay_s: Annotated[
        float, Field(gt=0, description="Longest reconnect back-off, seconds.")
    ] = 10.0
    broker_stats: Annotated[
        bool,
        Field(
            description="Read the broker's own counters (messages dropped by full queues, "
            "received, stored) from Mosquitto's $SYS topics over a second connection, "
            "<client_id>-sys, and export them as pantau_broker_* metrics. The account needs "
            "`topic read $SYS/#` (rendered for the ingester's account when mqtt.auth is on)."
        ),
    ] = True

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port")
        return value


class InfluxSettings(BaseModel):
    """The InfluxDB server, spoken to through its v1 HTTP API (line protocol, InfluxQL)."""

    url: Annotated[
        str,
        Field(
            description="InfluxDB HTTP URL. Unset: the InfluxDB `pantau up` starts on "
            "127.0.0.1:<stack.influx_port>; set: use that existing server (1.x, or 2.x/3.x "
            "through their v1 compatibility API)."
        ),
    ] = ""
    database: Annotated[str, Field(description="Database the readings are written to.")] = "pantau"
    retention_policy: Annotated[
        str, Field(description="Retention policy for raw readings, created when missing.")
    ] = "raw"
    retention_days: Annotated[
        int, Field(ge=1, description="How long raw readings are kept, days.")
    ] = 400
    hourly_retention_policy: Annotated[
        str, Field(description="Retention policy of the hourly mean/min/max roll-up.")
    ] = "hourly"
    hourly_retention_days: Annotated[
        int, Field(ge=1, description="How long the hourly roll-up is kept, days.")
    ] = 3650
    prepare_database: Annotated[
        bool,
        Field(
            description="Create the database, the retention policies and the hourly "
            "continuous query at start (InfluxDB 1.x). Off for InfluxDB 2.x/3.x, whose v1 API "
            "cannot: make the buckets and database/retention-policy mappings there (README)."
        ),
    ] = True
    username: Annotated[str | None, Field(description="InfluxDB user (none: no auth).")] = None
    password: Annotated[SecretStr | None, Field(description="Password for `username`.")] = None
    timeout_s: Annotated[float, Field(gt=0, description="HTTP timeout per request, seconds.")] = (
        10.0
    )
    gzip: Annotated[bool, Field(description="Compress write bodies with gzip.")] = True
    batch_max_points: Annotated[
        int, Field(ge=1, description="A write batch is sent when it holds this many points.")
    ] = 10000
    flush_interval_s: Annotated[
        float,
        Field(gt=0, description="A non-empty batch is sent at the latest after this, seconds."),
    ] = 0.2
    retry_max_delay_s: Annotated[
        float, Field(gt=0, description="Longest back-off between write retries, seconds.")
    ] = 10.0

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 8086


class DatabaseSettings(BaseModel):
    """The SQL database holding the device registry and dead letters."""

    url: Annotated[
        str,
        Field(
            description="SQLAlchemy URL. Unset: the SQLite file <stack.var_dir>/pantau.db. "
            "Production: postgresql+psycopg://user:pass@host/pantau."
        ),
    ] = ""


class ApiSettings(BaseModel):
    """The FastAPI HTTP service."""

    host: Annotated[str, Field(description="Address the API listens on.")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, description="Port the API listens on.")] = 18080
    readings_max_rows: Annotated[
        int, Field(ge=1, description="Most rows one readings query returns.")
    ] = 10000
    max_body_bytes: Annotated[
        int,
        Field(
            ge=1024,
            description="Larger request bodies are refused with 413, bytes (the largest "
            "legitimate one is a CSV import).",
        ),
    ] = 5 * 1024 * 1024


class IngestSettings(BaseModel):
    """The ingest pipeline (decode, validate, write, acknowledge)."""

    max_payload_bytes: Annotated[
        int, Field(ge=64, description="Larger MQTT payloads are dead-lettered, bytes.")
    ] = 64 * 1024
    future_tolerance_s: Annotated[
        float, Field(ge=0, description="Readings further in the future are rejected, seconds.")
    ] = 300.0
    max_pending_messages: Annotated[
        int,
        Field(
            ge=100,
            description="Messages received but not yet taken by the pipeline, at most. Past "
            "it the MQTT network thread pauses reading and TCP back-pressure keeps the rest in "
            "the broker, so memory stays bounded even when the broker pushes a whole backlog "
            "at once (Mosquitto 2.0.11 does on session resume, whatever the Receive Maximum).",
        ),
    ] = 20000
    max_pending_bytes: Annotated[
        int,
        Field(
            ge=65536,
            description="The same bound in payload bytes (for large packs), bytes.",
        ),
    ] = 16 * 1024 * 1024
    batches_in_flight: Annotated[
        int,
        Field(
            ge=1,
            le=8,
            description="Prepared batches that may wait for the InfluxDB writer while the next "
            "one is decoded. Memory is bounded by mqtt.receive_maximum either way.",
        ),
    ] = 2
    stage_interval_s: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="How long arriving messages may gather before the reading stages "
            "(detection, alert rules) run on them, seconds; independent of the write batch's "
            "influx.flush_interval_s. Lower: faster alerts, more CPU per reading.",
        ),
    ] = 0.005
    metrics_port: Annotated[
        int,
        Field(
            ge=0,
            le=65535,
            description="Port of the ingester's /metrics, /healthz, /readyz HTTP listener "
            "(0: none).",
        ),
    ] = 19100
    metrics_host: Annotated[
        str,
        Field(
            description="Address that listener binds: 127.0.0.1, or 0.0.0.0 in a container "
            "that Prometheus scrapes from another (docker-compose.yml)."
        ),
    ] = "127.0.0.1"
    status_interval_s: Annotated[
        float, Field(gt=0, description="How often the ingester logs its counts, seconds.")
    ] = 5.0
    lag_warn_s: Annotated[
        float,
        Field(
            gt=0,
            description="An ingest lag (commit time minus the arrival time at the ingester of "
            "the oldest message of a batch) at least this long is logged as overload, seconds.",
        ),
    ] = 60.0
    backlog_warn_messages: Annotated[
        int,
        Field(
            ge=1,
            description="A backlog (messages stored by the broker plus those the ingester "
            "received and has not committed) at least this large and still growing is logged "
            "as overload, messages.",
        ),
    ] = 10_000
    overload_log_interval_s: Annotated[
        float,
        Field(
            gt=0,
            description="Overload (broker drops rising, the backlog growing past "
            "backlog_warn_messages, lag past lag_warn_s) is logged as a WARNING, and the "
            "devices' sequence gaps as an INFO line, at most once per this interval, seconds.",
        ),
    ] = 60.0
    require_registered_devices: Annotated[
        bool,
        Field(
            description="True: a message from a device missing from the registry is "
            "dead-lettered (unknown_device). False: its kind is inferred from its fields by the "
            "catalog, as before the registry existed (development, migration)."
        ),
    ] = True


class RegistrySettings(BaseModel):
    """The device registry: how its changes reach a running ingester and broker."""

    refresh_interval_s: Annotated[
        float,
        Field(
            gt=0,
            description="The latest a running ingester re-checks the registry's revision and "
            "reloads its in-memory device directory, seconds. On PostgreSQL a change is seen "
            "at once (LISTEN/NOTIFY); this poll is the fallback when notices are lost.",
        ),
    ] = 2.0
    broker_sync_interval_s: Annotated[
        float,
        Field(
            gt=0,
            description="The latest the broker sync (`pantau up`, `pantau broker sync`) "
            "re-checks the registry and, after a change, re-renders Mosquitto's password and "
            "ACL files and reloads the broker (SIGHUP), seconds. On PostgreSQL a change is seen "
            "at once (LISTEN/NOTIFY); this poll is the fallback when notices are lost.",
        ),
    ] = 2.0
    sqlite_poll_interval_s: Annotated[
        float,
        Field(
            gt=0,
            description="On SQLite (no change notices) how often the ingester and the broker "
            "sync read the registry's revision row (one tiny read), seconds.",
        ),
    ] = 0.1


class DetectSettings(BaseModel):
    """The anomaly-detection stage of the ingester."""

    enabled: Annotated[bool, Field(description="Score every reading as it is ingested.")] = True
    threshold: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="Scores at or above this become anomaly events and get "
            "an anomaly_reason (score 0..1).",
        ),
    ] = 0.6
    snapshot_interval_s: Annotated[
        float, Field(gt=0, description="How often the detector state is saved, seconds.")
    ] = 60.0


class AlertSettings(BaseModel):
    """The alert stage of the ingester (rules in alerts/rules.yaml)."""

    enabled: Annotated[
        bool, Field(description="Evaluate the alert rules on every reading as it is ingested.")
    ] = True
    tick_interval_s: Annotated[
        float, Field(gt=0, description="How often silent devices are checked (no-data), seconds.")
    ] = 1.0
    mqtt_topic: Annotated[
        str,
        Field(description="Retained per-device alert state is published under <this>/<device_id>."),
    ] = "pantau/alerts"
    rules_path: Annotated[
        Path | None,
        Field(description="A rules YAML of the city's own (none: the shipped alerts/rules.yaml)."),
    ] = None


class SimulateSettings(BaseModel):
    """The field simulators that stand in for hardware."""

    interval_s: Annotated[
        float, Field(gt=0, description="Seconds between two readings of one device.")
    ] = 5.0
    seed: Annotated[int, Field(description="Random seed; the same seed gives the same run.")] = 7
    scenario: Annotated[
        str,
        Field(
            description="Scenario to play: a name from simulators/scenarios/ (normal-day, "
            "flood-malili, haze, rush-hour-accident, sensor-faults) or a YAML file path."
        ),
    ] = "normal-day"
    speed: Annotated[
        float,
        Field(
            gt=0,
            description="Simulated seconds per wall-clock second (60: an hour a minute). Faster "
            "runs start in the past and continue in real time once they reach the present.",
        ),
    ] = 1.0
    per_device_connections: Annotated[
        bool,
        Field(
            description="One MQTT connection per device (own client id, last will, credentials) "
            "instead of a few shared ones. Implied by credentials_path."
        ),
    ] = False
    credentials_path: Annotated[
        Path | None,
        Field(
            description="JSON or YAML file mapping device id to MQTT password; when set every "
            "device connects as itself (username = device id)."
        ),
    ] = None
    connections: Annotated[
        int,
        Field(ge=1, le=64, description="Shared MQTT connections publishing for the whole fleet."),
    ] = 1
    truth_log_path: Annotated[
        Path | None,
        Field(
            description="Where the ground-truth log of injected faults and events goes (JSON "
            "lines). Unset: <stack.var_dir>/simulate/ground-truth.jsonl."
        ),
    ] = None
    max_pending_messages: Annotated[
        int,
        Field(
            ge=1,
            description="Messages published but not yet acknowledged, at most; past it the "
            "simulator waits for the broker (and falls behind the clock).",
        ),
    ] = 50000


class StackSettings(BaseModel):
    """The local stack `pantau up` and the test fixtures start."""

    mosquitto_port: Annotated[
        int,
        Field(
            ge=1,
            le=65535,
            description="Port of the stack's own Mosquitto (not 1883, so a "
            "system broker can keep it).",
        ),
    ] = 18830
    influx_port: Annotated[
        int,
        Field(ge=1, le=65535, description="HTTP port of the stack's own InfluxDB (not 8086)."),
    ] = 18086

    var_dir: Annotated[Path, Field(description="Where generated configs, data and logs live.")] = (
        Path("var")
    )
    influx_rpc_port: Annotated[
        int,
        Field(ge=1, le=65535, description="InfluxDB's backup/restore RPC port (1.x binds one)."),
    ] = 18088
    start_timeout_s: Annotated[
        float, Field(gt=0, description="How long to wait for a service to become healthy.")
    ] = 30.0


class WebhookTarget(BaseModel):
    """One webhook: a URL and the secret its HMAC-SHA256 signature is made with."""

    url: Annotated[str, Field(description="Where the Alert JSON is POSTed (http or https).")]
    secret: Annotated[
        SecretStr,
        Field(min_length=1, description="Shared secret for the X-Pantau-Signature HMAC-SHA256."),
    ]

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a webhook URL is http(s)://host/..., not {value[:80]!r}")
        return value


class RecipientGroup(BaseModel):
    """People notified together: webhooks and e-mail addresses, for some severities."""

    name: Annotated[str, Field(min_length=1, max_length=64, description="Group name.")]
    severities: Annotated[
        list[str], Field(description="Severities sent to this group: info, warning, critical.")
    ] = ["warning", "critical"]
    webhooks: Annotated[list[WebhookTarget], Field(description="Webhooks of the group.")] = []
    emails: Annotated[list[str], Field(description="E-mail addresses of the group.")] = []

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"info", "warning", "critical"}
        if unknown:
            raise ValueError(f"unknown severities {sorted(unknown)}: info, warning, critical")
        return value

    escalate_after_min: Annotated[
        float,
        Field(
            ge=0,
            description="0: told of every change at once. Above 0: an escalation group, told "
            "only when an alert stays unacknowledged (firing) this many minutes.",
        ),
    ] = 0.0


class NotifySettings(BaseModel):
    """Alert notifications: recipients, the outbox dispatcher, SMTP."""

    enabled: Annotated[
        bool, Field(description="Run the notification dispatcher (`pantau notify run`).")
    ] = True
    groups: Annotated[
        list[RecipientGroup],
        Field(description="Recipient groups (JSON list in the environment variable)."),
    ] = []
    reminder_interval_min: Annotated[
        float, Field(ge=0, description="Remind every N minutes while firing unacknowledged; 0 off.")
    ] = 15.0
    poll_interval_s: Annotated[
        float, Field(gt=0, le=10, description="How often the dispatcher looks for work, seconds.")
    ] = 0.02
    batch_max_rows: Annotated[
        int, Field(ge=1, le=1000, description="Outbox rows claimed per round.")
    ] = 50
    lease_s: Annotated[
        float, Field(gt=0, description="A claimed row is retried by anyone after this, seconds.")
    ] = 60.0
    max_attempts: Annotated[
        int, Field(ge=1, description="Attempts before a notification is marked failed.")
    ] = 10
    retry_base_s: Annotated[
        float, Field(gt=0, description="First retry delay, seconds (doubles per attempt).")
    ] = 1.0
    retry_max_s: Annotated[float, Field(gt=0, description="Longest retry delay, seconds.")] = 600.0
    timeout_s: Annotated[float, Field(gt=0, description="HTTP/SMTP timeout, seconds.")] = 10.0
    heartbeat_path: Annotated[
        str, Field(description="File the dispatcher touches every few seconds (health checks).")
    ] = ""
    smtp_host: Annotated[str, Field(description="SMTP server host (empty: no e-mail).")] = ""
    smtp_port: Annotated[int, Field(ge=1, le=65535, description="SMTP server port.")] = 25
    smtp_starttls: Annotated[bool, Field(description="Upgrade the SMTP session with STARTTLS.")] = (
        False
    )
    smtp_username: Annotated[str | None, Field(description="SMTP login (none: no auth).")] = None
    smtp_password: Annotated[SecretStr | None, Field(description="SMTP password.")] = None
    smtp_from: Annotated[str, Field(description="From address of alert e-mails.")] = (
        "pantau@localhost"
    )

    @field_validator("groups")
    @classmethod
    def _unique_group_names(cls, value: list[RecipientGroup]) -> list[RecipientGroup]:
        names = [g.name for g in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"recipient group names must be unique: {repeated}")
        return value


class Settings(BaseSettings):
    """All of Pantau's settings."""

    model_config = SettingsConfigDict(
        env_prefix="PANTAU_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    display_timezone: Annotated[
        str, Field(description="Time zone for people (logs, CLI); storage is always UTC.")
    ] = "Asia/Makassar"
    log_level: Annotated[str, Field(description="Log level: DEBUG, INFO, WARNING, ERROR.")] = "INFO"

    _mqtt_external: bool = PrivateAttr(default=False)
    _influx_external: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _resolve_urls(self) -> Settings:
        # An unset URL means "the stack's own server": fill it in so every component sees a
        # concrete URL, and remember that the stack must start that server.
        self._mqtt_external = bool(self.mqtt.url)
        self._influx_external = bool(self.influx.url)
        if not self.mqtt.url:
            self.mqtt.url = f"mqtt://127.0.0.1:{self.stack.mosquitto_port}"
        if not self.influx.url:
            self.influx.url = f"http://127.0.0.1:{self.stack.influx_port}"
        if not self.database.url:
            self.database.url = f"sqlite:///{self.stack.var_dir.resolve() / 'pantau.db'}"
        return self

    def mqtt_is_external(self) -> bool:
        """True when PANTAU_MQTT__URL was given: use that broker, start none."""
        return self._mqtt_external

    def influx_is_external(self) -> bool:
        """True when PANTAU_INFLUX__URL was given: use that server, start none."""
        return self._influx_external


def render_env_example() -> str:
    """The text of `.env.example`: every option, its description and default."""
    lines = [
        "# Pantau settings. Generated by `pantau settings env-example`; do not edit by hand.",
        "# Every variable is optional; the value shown is the default.",
        "",
    ]
    top_level: list[tuple[str, object, str]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"# --- {name}: {(annotation.__doc__ or '').strip()}")
            for sub_name, sub_field in annotation.model_fields.items():
                lines.append(f"# {sub_field.description or ''}")
                lines.append(
                    f"#PANTAU_{name.upper()}__{sub_name.upper()}={_env_value(sub_field.default)}"
                )
            lines.append("")
        else:
            top_level.append((name, field.default, field.description or ""))
    lines.append("# --- general")
    for name, default, description in top_level:
        lines.append(f"# {description}")
        lines.append(f"#PANTAU_{name.upper()}={_env_value(default)}")
    return "\n".join(lines) + "\n"


def _env_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(_plain(value))  # pydantic-settings parses complex values as JSON
    return str(value)


def _plain(value: object) -> object:
    """JSON-ready, secrets revealed (for a child process's environment only)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The PANTAU_* variables that reproduce `settings` in a child process (secrets included)."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for sub_name in type(value).model_fields:
                sub_value = getattr(value, sub_name)
                if isinstance(sub_value, SecretStr):
                    sub_value = sub_value.get_secret_value()
                if sub_value is not None:
                    env[f"PANTAU_{name.upper()}__{sub_name.upper()}"] = _env_value(sub_value)
        elif value is not None:
            env[f"PANTAU_{name.upper()}"] = _env_value(value)
    return env
