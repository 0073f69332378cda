"""A broker account for `pantau simulate` run by hand beside `pantau up`.

The stack's own Mosquitto refuses anonymous clients (`mqtt.auth`), and the simulators that
`pantau up` starts get their password in their environment, which a second terminal does not
have. So when no MQTT username is given and the broker is the stack's own (no
PANTAU_MQTT__URL), the simulator makes itself a publisher account in the registry — the
source the broker's password file is rendered from — and waits until the stack's sync has
re-rendered the file and reloaded the broker (well under a second). A fresh password at every
run; only its hash is stored, the plaintext lives in this process.
"""

from __future__ import annotations

import logging
import time

from pydantic import SecretStr

from devices.models import ServiceRole
from devices.registry import Registry
from pantau.mqtt_publish import Qos1Publisher, RefusedError
from pantau.settings import Settings
from pantau.sql import make_engine

log = logging.getLogger(__name__)

SIMULATE_CLI_USER = "pantau_simulate_cli"


def use_stack_account(settings: Settings, wait_s: float = 15.0) -> bool:
    """Give `settings.mqtt` an account the stack's broker admits; False when not needed or
    not possible (then the connection goes as configured and says why it failed)."""
    mqtt = settings.mqtt
    if mqtt.username or settings.mqtt_is_external() or not mqtt.auth:
        return False
    engine = make_engine(settings.database.url)
    try:
        password = Registry(engine).set_service_account(SIMULATE_CLI_USER, ServiceRole.PUBLISHER)
    except Exception as exc:  # no registry here (no stack yet): connect as configured
        log.warning("no broker account for the simulator (%s); is `pantau up` running?", exc)
        return False
    finally:
        engine.dispose()
    mqtt.username, mqtt.password = SIMULATE_CLI_USER, SecretStr(password)
    deadline = time.monotonic() + wait_s
    while True:
        probe = Qos1Publisher(
            mqtt.host,
            mqtt.port,
            f"{mqtt.client_id}-simulate-probe",
            username=SIMULATE_CLI_USER,
            password=password,
            session_expiry_s=0,
        )
        try:
            probe.connect(timeout_s=max(1.0, deadline - time.monotonic()))
        except RefusedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)  # the stack has not re-rendered the password file yet
            continue
        probe.close()
        log.info("publishing as %s, a service account of the stack's broker", SIMULATE_CLI_USER)
        return True
