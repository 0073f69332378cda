"""Local stand-ins for the third parties notifications go to: a real HTTP webhook receiver (a
listening socket that can be taken down and brought back on the same port) and a real SMTP
server (aiosmtpd)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    delivery_id: str
    signature: str
    timestamp: str
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1: records every POST; `down()` closes the socket (the
    sender sees connection refused), `up()` listens again on the same port. `delay_s` makes
    each answer slow (to catch a sender mid-request)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.port = free_port()
        self.delay_s = delay_s
        self.posts: list[Received] = []
        self.in_progress = 0  # requests read but not yet answered
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/hook":
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.in_progress += 1
                if receiver.delay_s:
                    threading.Event().wait(receiver.delay_s)
                with receiver.lock:
                    receiver.in_progress -= 1
                    receiver.posts.append(
                        Received(
                            self.headers.get("X-Pantau-Delivery", ""),
                            self.headers.get("X-Pantau-Signature", ""),
                            self.headers.get("X-Pantau-Timestamp", ""),
                            body,
                        )
                    )
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass  # the sender died waiting (a test killed it)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def deliveries(self) -> dict[str, list[Received]]:
        """POSTs by delivery id (what a receiver that dedups would keep, and the repeats)."""
        out: dict[str, list[Received]] = {}
        with self.lock:
            for post in self.posts:
                out.setdefault(post.delivery_id, []).append(post)
        return out


class MailSink:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)  # what the default policy builds
        self.messages.append(message)
        return "250 OK"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free local port, in its own thread."""

    def __init__(self) -> None:
        self.sink = MailSink()
        self.port = free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
