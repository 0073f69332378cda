"""Shared dependencies of the API's routes, as `Annotated` types, and who may call what.

Every route declares the role it needs with `require(Role.X)` (or is listed in `PUBLIC_PATHS`);
a bearer token is looked up by its SHA-256 (`people.accounts.People.authenticate`). No token
or an unknown, revoked or disabled one: 401. A valid token whose role is not enough: 403.
Viewers may read; technicians and responders may read and do their own work; admins may do
everything.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from devices.catalog import SensorCatalog
from devices.registry import Registry
from ingest.dead_letters import DeadLetterStore
from pantau.influxdb import InfluxClient
from pantau.mqtt_publish import Qos1Publisher
from pantau.settings import Settings
from people.accounts import People
from people.models import Role
from people.schemas import UserPublic


@dataclass
class AppServices:
    """What the app holds for its lifetime; built in `create_app`, closed on shutdown."""

    settings: Settings
    influx: InfluxClient
    engine: Engine
    catalog: SensorCatalog
    dead_letters: DeadLetterStore
    registry: Registry
    people: People
    _publisher: Qos1Publisher | None = None
    _publisher_lock: threading.Lock = field(default_factory=threading.Lock)

    def publisher(self) -> Qos1Publisher:
        """The app's one MQTT publisher (dead-letter replay), connected on first use and kept
        for the app's lifetime; raises OSError while the broker cannot be reached."""
        with self._publisher_lock:
            if self._publisher is None or not self._publisher.connected:
                mqtt = self.settings.mqtt
                password = mqtt.password.get_secret_value() if mqtt.password else None
                publisher = Qos1Publisher(
                    mqtt.host,
                    mqtt.port,
                    f"pantau-api-{os.getpid()}",
                    username=mqtt.username,
                    password=password,
                    session_expiry_s=0,  # the client re-sends what is in flight itself
                    window=1000,
                )
                publisher.connect(timeout_s=5)
                self._publisher = publisher
            return self._publisher

    def close(self) -> None:
        """Release what the app holds (on shutdown)."""
        with self._publisher_lock:
            if self._publisher is not None and self._publisher.connected:
                self._publisher.close(2.0)
            self._publisher = None
        self.influx.close()
        self.engine.dispose()


def get_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


ServicesDep = Annotated[AppServices, Depends(get_services)]


# Which roles satisfy a requirement: admin everything, every role can read.
ALLOWED: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset(Role),
    Role.TECHNICIAN: frozenset({Role.TECHNICIAN, Role.ADMIN}),
    Role.RESPONDER: frozenset({Role.RESPONDER, Role.ADMIN}),
    Role.ADMIN: frozenset({Role.ADMIN}),
}
PUBLIC_PATHS = frozenset({"/health", "/ready"})

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer pt_...`")


def require(role: Role) -> Any:
    """A dependency admitting a token whose role satisfies `role`; it yields that user."""

    def check_role(
        request: Request,
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> UserPublic:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(401, "authentication required: send a bearer token", challenge)
        if len(credentials.credentials) > 200:
            raise HTTPException(401, "invalid token", challenge)
        user = services.people.authenticate(credentials.credentials)
        if user is None:
            raise HTTPException(401, "invalid token", challenge)
        if user.role not in ALLOWED[role]:
            raise HTTPException(
                403, f"needs the {role.value} role; {user.name} is {user.role.value}"
            )
        request.state.user = user
        return user

    check_role.required_role = role  # type: ignore[attr-defined]
    return Depends(check_role)


def required_role(dependency: Any) -> Role | None:
    """The role a dependency callable made by `require` checks, if it is one."""
    role = getattr(dependency, "required_role", None)
    return role if isinstance(role, Role) else None


Viewer = Annotated[UserPublic, require(Role.VIEWER)]
Technician = Annotated[UserPublic, require(Role.TECHNICIAN)]
Responder = Annotated[UserPublic, require(Role.RESPONDER)]
Admin = Annotated[UserPublic, require(Role.ADMIN)]
