"""`pantau simulate`: run simulated field devices against the broker."""

from __future__ import annotations

import signal

import typer

from pantau.logs import configure_logging
from pantau.settings import Settings


def simulate_command(
    devices: int = typer.Option(8, min=1, help="How many water-level gauges."),
    interval_s: float | None = typer.Option(None, help="Seconds between readings of a device."),
    duration_s: float | None = typer.Option(None, help="Stop after this many seconds."),
) -> None:
    """Publish readings of simulated water-level gauges over MQTT (QoS 1)."""
    from simulators.runner import Simulation, default_gauges

    settings = Settings()
    configure_logging(settings.log_level, settings.display_timezone, "simulate")
    sim = Simulation(
        settings.mqtt,
        default_gauges(devices, settings.simulate.seed),
        interval_s or settings.simulate.interval_s,
    )
    signal.signal(signal.SIGTERM, lambda *_: sim.stop.set())
    signal.signal(signal.SIGINT, lambda *_: sim.stop.set())
    sim.run(duration_s)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
