"""Delivery channels: e-mail over SMTP, and a file outbox (one NDJSON line per message) for the
channels without a provider configured.

The ``messages`` collection's unique idempotency key stops a second delivery of an action; the
outbox is also idempotent by the key itself, and an e-mail carries the key as its Message-ID, so a
receiving server or client that sees it twice after a crash at the worst moment can drop the copy.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import orjson
from markupsafe import Markup
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import signing, templates
from shared.mail import Mailer, MailRefused
from shared.store import Collections, Document


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


def render(message: dict[str, Any], in_force: templates.InForce) -> tuple[str, templates.Parts]:
    """The message's template in the customer's locale, with its context; a template that is missing
    or does not render fails the message for good."""
    values = {**message.get("context", {}), "customer_id": message["customer_id"]}
    try:
        return in_force.render(message["template_id"], message.get("locale"), values)
    except (KeyError, ValueError) as exc:
        raise DeliveryFailed(f"template: {exc}", permanent=True) from None


class Channels:
    """Which channel delivers which kind of message: configured providers, else the outbox; and the
    signed rating links a message that asks for a rating gets, whatever its channel."""

    def __init__(
        self, default: Channel, by_kind: Mapping[str, Channel] | None = None, ratings: RatingLinks | None = None
    ) -> None:
        self.default = default
        self.by_kind = dict(by_kind or {})
        self.ratings = ratings

    def pick(self, kind: str) -> Channel:
        return self.by_kind.get(kind, self.default)


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Signed one-click unsubscribe links to the storefront's ``/unsubscribe`` page (shared.signing)."""

    base_url: str
    secret: str

    def url(self, customer_id: str, channel: str, locale: str | None) -> str:
        query = {"token": signing.unsubscribe_token(self.secret, customer_id, channel)}
        if locale:
            query["lang"] = locale
        return f"{self.base_url.rstrip('/')}/unsubscribe?{urlencode(query)}"


@dataclass(frozen=True)
class RatingLinks:
    """Signed one-click rating links to the storefront's ``/ratings`` page (shared.signing.Rating).

    A rule asks for them with a ``survey`` value in its action's context (``"csat"``, ``"nps"`` or
    both, e.g. ``"csat nps"``); its template then has ``csat_links`` (scores 1-5) and ``nps_links``
    (0-10), each a list of ``{"score", "url"}``. Each link names the message, so the answer is
    counted for its rule, channel and locale, and a second click on another score replaces the
    first; links expire after ``valid_for``."""

    base_url: str
    secret: str
    valid_for: timedelta = timedelta(days=30)

    def add(self, message: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The message's context with the links it asks for (unchanged when it asks for none)."""
        context = dict(message.get("context") or {})
        asked = set(str(context.get("survey") or "").replace(",", " ").split())
        for survey, scores in (("csat", range(1, 6)), ("nps", range(11))):
            if survey not in asked:
                continue
            rating = signing.Rating(
                survey,  # type: ignore[arg-type]
                message["action_id"],
                message["customer_id"],
                message["rule_id"],
                message["channel"],
                message.get("locale"),
                context.get("order_id"),
                int((now + self.valid_for).timestamp()),
            )
            token = signing.rating_token(self.secret, rating)
            base = f"{self.base_url.rstrip('/')}/ratings"
            context[f"{survey}_links"] = [
                {"score": n, "url": f"{base}?{urlencode({'token': token, 'score': n})}"} for n in scores
            ]
        return context


class EmailChannel:
    """E-mail over SMTP (aiosmtplib): the template rendered in the customer's locale, in the sandbox,
    sent as multipart/alternative: the text, and HTML in the shared accessible layout
    (``shared.templates.email_html``; a template's own ``html`` part, when it has one, as its body).

    With ``links``, every e-mail ends with an unsubscribe link in its language and carries the
    RFC 8058 one-click headers (``List-Unsubscribe`` and ``List-Unsubscribe-Post``), which mail
    clients show as an "unsubscribe" button; the link sets the customer's e-mail consent off."""

    name = "smtp"

    def __init__(
        self, mailer: Mailer, links: UnsubscribeLinks | None = None, in_force: templates.InForce | None = None
    ) -> None:
        self.mailer = mailer
        self.links = links
        self.templates = in_force or templates.InForce()

    async def send(self, message: dict[str, Any]) -> bool:
        to = message.get("to")
        if not to:
            raise DeliveryFailed("no e-mail address for this customer", permanent=True)
        locale, parts = render(message, self.templates)
        headers = {"Message-ID": f"<{message['idempotency_key'].replace(':', '.')}@proact>"}
        footer = None
        if self.links is not None:
            url = self.links.url(message["customer_id"], "email", message.get("locale"))
            text_footer = self.templates.render("unsubscribe", locale, {"url": Markup(url)})[1]["footer"]  # noqa: S704 - our own URL
            link = Markup('<a href="{0}" style="color:#1d4ed8;">{0}</a>').format(url)
            footer = (text_footer, self.templates.render("unsubscribe", locale, {"url": link})[1]["footer"])
            headers |= {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        mail = self.mailer.compose_rendered(to, locale, parts, headers, footer)  # an error fails the message
        try:
            await self.mailer.send(mail, to)
        except MailRefused as exc:
            raise DeliveryFailed(exc.reason, exc.permanent) from None
        return True


class WebhookChannel:
    """A provider's webhook (SMS, messengers, push): a JSON POST signed with HMAC-SHA256 over
    ``<timestamp>.<body>`` in ``X-Proact-Signature: t=<timestamp>,v1=<hex>``, the idempotency key in
    ``Idempotency-Key``. 2xx is delivered; 408, 429, 5xx, a time-out or a refused connection are worth
    another attempt; any other answer is final."""

    name = "webhook"

    def __init__(
        self, url: str, secret: str, timeout_s: float = 5.0, in_force: templates.InForce | None = None
    ) -> None:
        self.url, self._secret, self.timeout_s = url, secret, timeout_s
        self.templates = in_force or templates.InForce()
        self._client = httpx.AsyncClient(timeout=timeout_s)

    def sign(self, body: bytes, timestamp: int) -> str:
        return signing.webhook_signature(self._secret, body, timestamp)

    async def send(self, message: dict[str, Any]) -> bool:
        locale, parts = render(message, self.templates)
        body = orjson.dumps(
            {
                "id": message["action_id"],
                "channel": message["channel"],
                "to": message.get("to"),
                "locale": locale,
                "text": templates.text_of(parts),
            }
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message["idempotency_key"],
            "X-Proact-Signature": self.sign(body, int(time.time())),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"provider: {type(exc).__name__}", permanent=False) from None
        if response.is_success:
            return True
        passing = response.status_code in (408, 429) or response.status_code >= 500
        raise DeliveryFailed(f"provider answered {response.status_code}", permanent=not passing)


class InboxChannel:
    """The in-app inbox: the message stored in MongoDB's ``inbox`` collection, keyed by its
    idempotency key (a second delivery is refused by the key), for the storefront to show to the
    signed-in customer (``GET /v1/inbox``)."""

    name = "inbox"

    def __init__(self, db: AsyncDatabase[Document], in_force: templates.InForce | None = None) -> None:
        self.templates = in_force or templates.InForce()
        self.db = db

    async def send(self, message: dict[str, Any]) -> bool:
        locale, parts = render(message, self.templates)
        item = {
            "_id": message["idempotency_key"],
            "action_id": message["action_id"],
            "rule_id": message["rule_id"],
            "customer_id": message["customer_id"],
            "locale": locale,
            "title": templates.subject_of(parts),
            "text": templates.text_of(parts),
            "created_at": datetime.fromisoformat(message["created_at"]),
            "read_at": None,
        }
        try:
            await self.db[Collections.INBOX].insert_one(item)
        except DuplicateKeyError:
            return False
        return True


class OutboxChannel:
    """The delivery of the channels without a provider: each message, rendered in the customer's
    language (its locale, subject or title, and text), appended with its action to
    ``<dir>/<channel>.ndjson``, where a newcomer running the demo can read what was sent.

    Idempotent by the message's key through a bounded index: the last ``index_size`` keys, rebuilt at
    start from the last ``tail_bytes`` of each file, so a start does not read every line ever written.
    The ``messages`` collection's unique key is what stops a second delivery; this index only covers a
    crash between the write here and the record there, moments apart."""

    name = "outbox"
    INDEX_SIZE = 100_000
    TAIL_BYTES = 32 * 1024 * 1024

    def __init__(
        self,
        directory: Path,
        in_force: templates.InForce | None = None,
        index_size: int = INDEX_SIZE,
        tail_bytes: int = TAIL_BYTES,
    ) -> None:
        self.directory = directory
        self.templates = in_force or templates.InForce()
        self.index_size = index_size
        directory.mkdir(parents=True, exist_ok=True)
        self._delivered: OrderedDict[str, None] = OrderedDict()
        for path in sorted(directory.glob("*.ndjson"), key=lambda p: p.stat().st_mtime):
            for line in _tail_lines(path, tail_bytes):
                try:
                    self._remember(orjson.loads(line)["idempotency_key"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a crash mid-write

    def _remember(self, key: str) -> None:
        self._delivered[key] = None
        self._delivered.move_to_end(key)
        while len(self._delivered) > self.index_size:
            self._delivered.popitem(last=False)

    async def send(self, message: dict[str, Any]) -> bool:
        key = message["idempotency_key"]
        if key in self._delivered:
            return False
        locale, parts = render(message, self.templates)
        rendered = {
            "locale": locale,
            "subject": templates.plain(templates.subject_of(parts)),
            "text": templates.plain(templates.text_of(parts)),
        }
        line = orjson.dumps({**message, "rendered": rendered}, option=orjson.OPT_APPEND_NEWLINE)
        path = self.directory / f"{message['channel']}.ndjson"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._remember(key)
        return True


def _tail_lines(path: Path, tail_bytes: int) -> list[bytes]:
    """The whole lines in the last ``tail_bytes`` of a file."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - tail_bytes, 0))
        chunk = f.read()
    lines = chunk.splitlines()
    if size > tail_bytes and lines:
        lines = lines[1:]  # the first line was cut by the seek
    return [line for line in lines if line.strip()]
