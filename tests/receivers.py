"""A real SMTP server (aiosmtpd) and a webhook receiver that count what arrives, by idempotency key:
used by the dispatcher's kill test and by ``make chaos``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


class Receivers:
    """What the SMTP server and the webhook receiver got, by idempotency key, and when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.smtp: Counter[str] = Counter()
        self.webhook: Counter[str] = Counter()
        self.first_at: dict[str, float] = {}

    def got(self, where: Counter[str], key: str) -> None:
        with self.lock:
            where[key] += 1
            self.first_at.setdefault(key, time.monotonic())

    def count(self, key: str) -> int:
        with self.lock:
            return self.smtp[key] + self.webhook[key]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        mail = message_from_bytes(envelope.content)
        key = str(mail["Message-ID"]).strip("<>").removesuffix("@proact").replace(".", ":")
        self.got(self.smtp, key)
        return "250 OK"

    def webhook_handler(self) -> type[BaseHTTPRequestHandler]:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receivers.got(receivers.webhook, self.headers.get("Idempotency-Key", "?"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def serve(self, smtp_port: int, webhook_port: int) -> tuple[Controller, ThreadingHTTPServer]:
        """Both receivers on loopback, in threads of this process; stop them with ``stop``."""
        smtp = Controller(self, hostname="127.0.0.1", port=smtp_port)
        smtp.start()
        hook = ThreadingHTTPServer(("127.0.0.1", webhook_port), self.webhook_handler())
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        return smtp, hook

    @staticmethod
    def stop(servers: tuple[Controller, ThreadingHTTPServer]) -> None:
        smtp, hook = servers
        smtp.stop()
        hook.shutdown()
