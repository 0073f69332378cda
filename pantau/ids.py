"""Identifiers every layer checks the same way: the device id rule.

A device id is a lowercase slug (letters, digits, inner hyphens, at most 64 characters). It is
also the device's MQTT username and a topic level, an InfluxDB tag value and a URL segment, so
the rule keeps out everything any of those would read specially: `,` `=` spaces, quotes,
newlines, `#` `+` `/` and `_` (which Pantau's own service accounts use, so the two never
collide on the broker).
"""

from __future__ import annotations

import re

ID_MAX_CHARS = 64
DEVICE_ID_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)


def is_valid_device_id(device_id: str) -> bool:
    return DEVICE_ID_RE.fullmatch(device_id) is not None
