"""Structured logging: `key=value` lines, timestamps in the city's time zone for people."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from zoneinfo import ZoneInfo


class _Formatter(logging.Formatter):
    def __init__(self, tz: ZoneInfo, component: str) -> None:
        super().__init__()
        self.tz = tz
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, self.tz).isoformat(timespec="milliseconds")
        message = record.getMessage()
        line = (
            f"{when} level={record.levelname.lower()} component={self.component} "
            f"logger={record.name} msg={message!r}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, timezone: str, component: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(ZoneInfo(timezone), component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
