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
        # One line per record; a message of several lines (a child's log tail) keeps its first
        # line there and the rest below it, indented like a traceback, not as one long repr.
        first, _, rest = message.partition("\n")
        line = (
            f"{when} level={record.levelname.lower()} component={self.component} "
            f"logger={record.name} msg={first!r}"
        )
        if rest:
            line += "".join(f"\n    {part}" for part in rest.splitlines())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, timezone: str, component: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(ZoneInfo(timezone), component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # alembic says 9 lines at every start ("setup plugin ...", "Context impl ..."): pantau.sql
    # logs one line instead, and only when it really upgraded the schema.
    for noisy in ("httpx", "httpcore", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
