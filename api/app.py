"""The FastAPI application: `create_app(settings)` builds it with its clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import AppServices
from api.routes import dead_letters, health, readings
from devices.catalog import default_catalog
from devices.db import make_engine
from ingest.dead_letters import DeadLetterStore
from pantau import __version__
from pantau.influxdb import InfluxClient
from pantau.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database.url)
        store = DeadLetterStore(engine, settings.mqtt.topic_prefix)
        store.create_schema()
        services = AppServices(
            settings=settings,
            influx=InfluxClient(settings.influx),
            engine=engine,
            catalog=default_catalog(),
            dead_letters=store,
        )
        app.state.services = services
        try:
            yield
        finally:
            services.influx.close()
            engine.dispose()

    app = FastAPI(
        title="Pantau",
        version=__version__,
        description="Sensor readings, devices, alerts and dead letters of Luwu Timur's "
        "smart-city sensors. Times are UTC (RFC 3339).",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(readings.router)
    app.include_router(dead_letters.router)
    return app
