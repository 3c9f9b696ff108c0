"""Delivery channels: e-mail over SMTP, and a file outbox (one NDJSON line per message) for the
channels without a provider configured.

The ``messages`` collection's unique idempotency key stops a second delivery of an action; the
outbox is also idempotent by the key itself, and an e-mail carries the key as its Message-ID, so a
receiving server or client that sees it twice after a crash at the worst moment can drop the copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import orjson

from shared import templates


class Channel(Protocol):
    name: str

    async def send(self, message: dict[str, Any]) -> bool:
        """Deliver; return False when this idempotency key was delivered before. Raises
        ``DeliveryFailed`` when the message cannot be delivered."""
        ...


class DeliveryFailed(Exception):
    """The message could not be delivered; ``reason`` says why (no personal data in it)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channels:
    """Which channel delivers which kind of message: configured providers, else the outbox."""

    def __init__(self, default: Channel, by_kind: Mapping[str, Channel] | None = None) -> None:
        self.default = default
        self.by_kind = dict(by_kind or {})

    def pick(self, kind: str) -> Channel:
        return self.by_kind.get(kind, self.default)


class EmailChannel:
    """E-mail over SMTP (aiosmtplib): the template rendered in the customer's locale, in the sandbox."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout_s: float = 10.0,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
    ) -> None:
        self.host, self.port, self.sender, self.timeout_s = host, port, sender, timeout_s
        self.username, self.password, self.starttls = username, password, starttls

    async def send(self, message: dict[str, Any]) -> bool:
        to = message.get("to")
        if not to:
            raise DeliveryFailed("no e-mail address for this customer", permanent=True)
        values = {**message.get("context", {}), "customer_id": message["customer_id"]}
        try:
            locale, parts = templates.render(message["template_id"], message.get("locale"), values)
        except (KeyError, ValueError) as exc:
            raise DeliveryFailed(f"template: {exc}", permanent=True) from None
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = parts.get("subject") or parts.get("title", "")
        mail["Message-ID"] = f"<{message['idempotency_key'].replace(':', '.')}@proact>"
        mail.set_content(parts.get("text") or parts.get("body", ""))
        mail["Content-Language"] = locale  # after set_content, which resets the Content-* headers
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                timeout=self.timeout_s,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
            )
        except aiosmtplib.SMTPRecipientsRefused:
            raise DeliveryFailed("the mail server refused the recipient", permanent=True) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"mail server: {type(exc).__name__}", permanent=False) from None
        return True


class OutboxChannel:
    """Appends each message to ``<dir>/<channel>.ndjson``; a stand-in for e-mail, SMS and push."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._delivered: set[str] = set()
        for path in directory.glob("*.ndjson"):
            with path.open("rb") as f:
                for line in f:
                    if line.strip():
                        self._delivered.add(orjson.loads(line)["idempotency_key"])

    async def send(self, message: dict[str, Any]) -> bool:
        key = message["idempotency_key"]
        if key in self._delivered:
            return False
        line = orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
        path = self.directory / f"{message['channel']}.ndjson"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._delivered.add(key)
        return True
