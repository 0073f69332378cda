"""Guards against hostile requests: a request body limit (413), and 422 answers that are always
JSON and always short.

- `BodySizeLimit` (pure ASGI middleware) refuses a body larger than `max_body_bytes` with 413:
  at once when its Content-Length says so, and while reading when it comes chunked, so a 20 MB
  body is never read whole. One limit for every route; the largest legitimate body is a CSV
  import (`POST /devices/import`).
- `validation_error_answer` replaces FastAPI's 422 handler, which echoes every failing input
  back whole: a 100 KB name came back in the answer, and a `NaN` or `1e400` (which Python's
  JSON parser reads as a float) made building the answer itself fail with a 500. Here an input
  is echoed only when it is a short string, a finite number, a boolean or null; `ctx` (which
  may hold exception objects) is left out.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ECHO_MAX_CHARS = 100


class BodySizeLimit:
    """413 for request bodies over `max_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading a body as itself.
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": self.message}, status_code=413)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


def _safe_input(value: Any) -> tuple[bool, Any]:
    """(echo it?, the value): short strings, finite numbers, booleans and null only."""
    if value is None or isinstance(value, bool):
        return True, value
    if isinstance(value, int):
        return abs(value) < 10**18, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, str):
        return len(value) <= ECHO_MAX_CHARS, value
    return False, None


def validation_error_answer(request: Request, exc: Exception) -> JSONResponse:
    """422 with, per error, where (`loc`), what (`msg`, `type`) and the input when small."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors()[:50]:
        item: dict[str, Any] = {
            "loc": [
                part if isinstance(part, int) else str(part)[:ECHO_MAX_CHARS]
                for part in error.get("loc", ())
            ],
            "msg": str(error.get("msg", ""))[:500],
            "type": str(error.get("type", "")),
        }
        echo, value = _safe_input(error.get("input"))
        if echo:
            item["input"] = value
        errors.append(item)
    return JSONResponse({"detail": errors}, status_code=422)
