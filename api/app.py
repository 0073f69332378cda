"""The FastAPI application: `create_app(settings)` builds it with its clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api.deps import AppServices
from api.guards import BodySizeLimit, validation_error_answer
from api.routes import (
    alerts,
    dead_letters,
    devices,
    health,
    latest,
    notifications,
    readings,
    users,
)
from devices.catalog import default_catalog
from devices.registry import Registry
from ingest.dead_letters import DeadLetterStore
from pantau import __version__
from pantau.errors import ConflictError, DuplicateError, NotFoundError, RefusedError
from pantau.influxdb import InfluxClient
from pantau.settings import Settings
from pantau.sql import make_engine, migrate
from people.accounts import People

CONSOLE_DIR = Path(__file__).parent / "console"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database.url)
        migrate(engine)
        store = DeadLetterStore(engine, settings.mqtt.topic_prefix)
        services = AppServices(
            settings=settings,
            influx=InfluxClient(settings.influx),
            engine=engine,
            catalog=default_catalog(),
            dead_letters=store,
            registry=Registry(engine, default_catalog()),
            people=People(engine),
        )
        app.state.services = services
        try:
            yield
        finally:
            services.close()

    # /docs and /redoc with Swagger UI and ReDoc from the pinned fastapi-offline package: a field
    # server without internet serves its own docs (no CDN).
    app: FastAPI = FastAPIOffline(
        title="Pantau",
        version=__version__,
        description="Sensor readings, devices, alerts and dead letters of Luwu Timur's "
        "smart-city sensors. Times are UTC (RFC 3339). Every route but /health and /ready "
        "needs `Authorization: Bearer <token>` (`pantau users create NAME --role admin` "
        "makes the first); roles: viewer reads, technician manages devices, responder handles "
        "alerts, admin manages people and may do everything.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    app.add_exception_handler(RequestValidationError, validation_error_answer)
    app.include_router(health.router)
    app.include_router(readings.router)
    app.include_router(dead_letters.router)
    app.include_router(dead_letters.replay_router)
    app.include_router(devices.router)
    app.include_router(users.router)
    app.include_router(alerts.router)
    app.include_router(notifications.router)
    app.include_router(latest.router)
    # The field console: static files, plain ES modules, no build step (api/console/).
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def _home() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.exception_handler(RefusedError)
    def _refused(request: Request, exc: RefusedError) -> JSONResponse:
        code = (
            404
            if isinstance(exc, NotFoundError)
            else 409
            if isinstance(exc, DuplicateError | ConflictError)
            else 422
        )
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=code)

    return app
