"""`pantau simulate`: play a scenario with simulated field devices against the broker."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from pantau.logs import configure_logging
from pantau.settings import Settings
from simulators.clock import local_day, local_day_start_s, local_weekday
from simulators.scenario import Scenario

log = logging.getLogger(__name__)

DEFAULT_ACCELERATED_SPAN_S = 86400.0


def _parse_start(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("give the time zone, e.g. 2026-11-30T05:00:00+08:00")
    return parsed.timestamp()


def choose_start_s(start: str | None, speed: float, scenario: Scenario) -> float:
    """When the simulated clock starts.

    `--start` if given (not in the future). Otherwise now for real time; accelerated, early
    enough that the whole scenario (or a day) lies in the past — at the scenario's preferred
    local hour and weekday (`start_local`, `start_weekdays`) when it names them.
    """
    now = time.time()
    if start is not None:
        start_s = _parse_start(start)
        if start_s > now + 60:
            raise typer.BadParameter("--start is in the future; the ingester would reject it")
        return start_s
    if speed <= 1.0:
        return now
    latest = now - (scenario.duration_s or DEFAULT_ACCELERATED_SPAN_S)
    if scenario.start_local_h is None:
        return latest
    day = local_day(latest)
    while True:
        candidate = local_day_start_s(day) + scenario.start_local_h * 3600.0
        weekday_ok = not scenario.start_weekdays or local_weekday(candidate) in (
            scenario.start_weekdays
        )
        if candidate <= latest and weekday_ok:
            return candidate
        day -= 1


def simulate_command(
    scenario: str | None = typer.Option(
        None, help="Scenario name or YAML path (default: settings, normal-day)."
    ),
    devices: int | None = typer.Option(
        None,
        min=1,
        help="Devices in total; more than the city's base fleet adds devices at the same "
        "sites (10000 for a load test). Never fewer than the base fleet.",
    ),
    speed: float | None = typer.Option(None, min=0.001, help="Simulated seconds per second."),
    start: str | None = typer.Option(
        None,
        help="Simulated start, ISO 8601 with offset. Default: now; with --speed > 1, "
        "the scenario's length (or a day) ago, so the replay ends at the present.",
    ),
    interval_s: float | None = typer.Option(
        None, help="Simulated seconds between two readings of a device."
    ),
    duration_s: float | None = typer.Option(
        None, help="Stop after this many wall-clock seconds (default: at the scenario's end)."
    ),
    seed: int | None = typer.Option(None, help="Random seed (default: settings)."),
    per_device_connections: bool = typer.Option(
        False, "--per-device-connections", help="One MQTT connection per device."
    ),
    connections: int | None = typer.Option(None, min=1, help="Shared connections."),
    truth_log: Path | None = typer.Option(None, help="Ground-truth log (JSON lines)."),
    list_scenarios: bool = typer.Option(False, "--list", help="List the scenarios and exit."),
    register: bool = typer.Option(
        False, "--register", help="First create the simulated devices in the registry."
    ),
    present: bool | None = typer.Option(
        None,
        "--present/--replay",
        help="Stamp readings with the time they are published (a compressed scenario that "
        "alerts now) or with the simulated time (a replay of the past). Default: --present "
        "beside a running `pantau up` when faster than real time, else --replay.",
    ),
    yield_to_others: bool = typer.Option(
        False,
        "--yield",
        help="Leave alone the devices another simulator on this machine drives (what "
        "`pantau up` runs its simulators with).",
    ),
) -> None:
    """Publish readings of simulated gauges, weather stations and traffic counters (QoS 1)."""
    from simulators.publisher import load_credentials
    from simulators.runner import Simulation
    from simulators.scenario import load_scenario, scenario_names
    from simulators.stack_account import use_stack_account
    from simulators.takeover import ClaimedDevices, claim

    if list_scenarios:
        for name in scenario_names():
            typer.echo(f"{name}: {load_scenario(name).description}")
        return
    settings = Settings()
    configure_logging(settings.log_level, settings.display_timezone, "simulate")
    options = settings.simulate
    chosen = load_scenario(scenario or options.scenario)
    run_speed = speed or options.speed
    credentials = load_credentials(options.credentials_path) if options.credentials_path else None
    truth_path = truth_log or options.truth_log_path
    if truth_path is None:
        truth_path = settings.stack.var_dir.resolve() / "simulate" / "ground-truth.jsonl"
    if register:
        from devices.registry import Registry
        from pantau.sql import make_engine, migrate
        from simulators.fleet import simulated_devices
        from simulators.registration import register_simulated_devices

        engine = make_engine(settings.database.url)
        migrate(engine)
        seed_used = options.seed if seed is None else seed
        created = register_simulated_devices(
            Registry(engine), simulated_devices(chosen, devices, seed_used)
        )
        engine.dispose()
        typer.echo(f"registered {created} simulated devices")
    beside_stack = False
    if credentials is None and not (per_device_connections or options.per_device_connections):
        # beside `pantau up`, whose broker refuses anonymous clients
        beside_stack = use_stack_account(settings)
    stamp_present = present if present is not None else beside_stack and run_speed > 1.0
    # Stamped with the present, the scenario starts at the present too: its time of day and
    # weather pick up where the live readings are, instead of jumping back to a past start.
    start_s = (
        time.time()
        if stamp_present and start is None
        else (choose_start_s(start, run_speed, chosen))
    )
    var_dir = settings.stack.var_dir.resolve()
    sim = Simulation(
        settings.mqtt,
        chosen,
        seed=options.seed if seed is None else seed,
        devices=devices,
        interval_s=interval_s or chosen.interval_s or options.interval_s,
        speed=run_speed,
        start_s=start_s,
        per_device_connections=per_device_connections or options.per_device_connections,
        credentials=credentials,
        connections=connections or options.connections,
        truth_path=truth_path,
        max_pending=options.max_pending_messages,
        present=stamp_present,
        yield_to=ClaimedDevices(var_dir) if yield_to_others else None,
    )
    signal.signal(signal.SIGTERM, lambda *_: sim.stop.set())
    signal.signal(signal.SIGINT, lambda *_: sim.stop.set())
    log.info(
        "scenario=%s devices=%d speed=%g start=%s truth_log=%s",
        chosen.name,
        len(sim.fleet),
        run_speed,
        datetime.fromtimestamp(start_s, ZoneInfo(settings.display_timezone)).isoformat(
            timespec="seconds"
        ),
        truth_path,
    )
    if stamp_present:
        log.info(
            "readings stamped with the present time: the scenario runs %gx compressed", run_speed
        )
    with contextlib.ExitStack() as stack:
        if beside_stack:  # the stack's own simulators leave these devices to this run
            stack.enter_context(claim(var_dir, [d.device_id for d in sim.fleet]))
        stats = sim.run(duration_s)
    log.info(
        "simulation done ticks=%d readings=%d messages=%d acked=%d faults=%s",
        stats.ticks,
        stats.readings,
        stats.messages,
        stats.acked,
        stats.faults,
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
