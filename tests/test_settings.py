"""Settings: environment parsing, resolved URLs, and `.env.example` kept in step."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pantau.settings import Settings, render_env_example, settings_to_env

REPO = Path(__file__).resolve().parents[1]


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTAU_INFLUX__BATCH_MAX_POINTS", "1234")
    monkeypatch.setenv("PANTAU_MQTT__URL", "mqtt://broker.example:1884")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.influx.batch_max_points == 1234
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker.example", 1884)
    assert settings.mqtt_is_external()
    assert not settings.influx_is_external()


def test_unset_urls_point_at_the_stacks_own_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PANTAU_MQTT__URL", "PANTAU_INFLUX__URL", "PANTAU_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PANTAU_STACK__MOSQUITTO_PORT", "28830")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mqtt.url == "mqtt://127.0.0.1:28830"
    assert settings.influx.url == "http://127.0.0.1:18086"
    assert settings.database.url.startswith("sqlite:///") and settings.database.url.endswith(
        "pantau.db"
    )
    assert not settings.mqtt_is_external()
    # Defaults avoid a system broker on 1883 and a system InfluxDB on 8086.
    assert Settings(_env_file=None).stack.mosquitto_port != 1883  # type: ignore[call-arg]
    assert Settings(_env_file=None).stack.influx_port != 8086  # type: ignore[call-arg]


def test_bad_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTAU_MQTT__URL", "http://wrong")
    with pytest.raises(ValidationError, match="url"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        mqtt={"url": "mqtt://h:1", "password": "s3cret"},  # type: ignore[arg-type]
        influx={"batch_max_points": 77},  # type: ignore[arg-type]
    )
    for key, value in settings_to_env(original).items():
        monkeypatch.setenv(key, value)
    copy = Settings(_env_file=None)  # type: ignore[call-arg]
    assert copy.model_dump() == original.model_dump()
    assert copy.mqtt.password is not None and copy.mqtt.password.get_secret_value() == "s3cret"


def test_env_example_is_generated_from_the_settings() -> None:
    text = (REPO / ".env.example").read_text()
    assert text == render_env_example(), "run `make env-example`"
    for group, model in Settings.model_fields.items():
        annotation = model.annotation
        if hasattr(annotation, "model_fields"):
            for name, field in annotation.model_fields.items():  # type: ignore[union-attr]
                assert f"PANTAU_{group.upper()}__{name.upper()}=" in text
                assert field.description, f"{group}.{name} has no description"
