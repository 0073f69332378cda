"""Shared dependencies of the API's routes, as `Annotated` types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from devices.catalog import SensorCatalog
from ingest.dead_letters import DeadLetterStore
from pantau.influxdb import InfluxClient
from pantau.settings import Settings


@dataclass
class AppServices:
    """What the app holds for its lifetime; built in `create_app`, closed on shutdown."""

    settings: Settings
    influx: InfluxClient
    engine: Engine
    catalog: SensorCatalog
    dead_letters: DeadLetterStore


def get_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


ServicesDep = Annotated[AppServices, Depends(get_services)]
