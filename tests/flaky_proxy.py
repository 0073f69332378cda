"""A fault-injecting HTTP proxy in front of a real InfluxDB, for write-outcome and load tests.

It forwards every request to InfluxDB; for the first `failures` writes it then answers with
`status` (and `Retry-After`) instead of InfluxDB's answer — the write happened, but the client
is told it did not: the "outcome unknown" case a retrying writer must survive without
duplicating points. With `write_delay_s` every write is held that long first: a slow database
that caps the ingester's capacity (one write at a time), for overload tests; it can be changed
while the proxy runs.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FlakyInfluxProxy:
    def __init__(
        self,
        upstream: str,
        *,
        failures: int = 0,
        status: int = 503,
        retry_after_s: float | None = 1.0,
        write_delay_s: float = 0.0,
    ) -> None:
        self.upstream = upstream
        self.failures = failures
        self.write_delay_s = write_delay_s
        self.status = status
        self.retry_after_s = retry_after_s
        self.writes_seen = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else b""
                if self.path.startswith("/write") and outer.write_delay_s > 0:
                    time.sleep(outer.write_delay_s)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                response = httpx.request(
                    method, outer.upstream + self.path, content=body, headers=headers, timeout=30
                )
                if self.path.startswith("/write"):
                    with outer.lock:
                        outer.writes_seen += 1
                        fail = outer.writes_seen <= outer.failures
                    if fail:
                        self.send_response(outer.status)
                        if outer.retry_after_s is not None:
                            self.send_header("Retry-After", str(outer.retry_after_s))
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(response.status_code)
                for key in ("Content-Type",):
                    if key in response.headers:
                        self.send_header(key, response.headers[key])
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyInfluxProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
