"""``python -m services.dispatcher``: connect MongoDB and Kafka, serve health and AsyncAPI, dispatch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import uvicorn
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.app import build_app, build_broker
from services.dispatcher.channels import (
    Channel,
    Channels,
    EmailChannel,
    InboxChannel,
    OutboxChannel,
    RatingLinks,
    UnsubscribeLinks,
    WebhookChannel,
)
from shared import template_store, templates
from shared.clock import SystemClock
from shared.logs import setup_logging
from shared.mail import Mailer
from shared.metrics import setup_metrics
from shared.settings import DispatcherSettings
from shared.store import Collections, Document, database, ensure_indexes, mongo_client
from shared.telemetry import setup_tracing

SERVICE = "dispatcher"


def channels(settings: DispatcherSettings, db: AsyncDatabase[Document], in_force: templates.InForce) -> Channels:
    """E-mail over SMTP when a host is configured (with signed unsubscribe links, so the secret for
    them is then required), SMS, push and calls through the provider's webhook when one is, in-app
    messages to the inbox in MongoDB; anything else without a provider goes to the file outbox.
    With the links' secret, messages that ask for a rating carry signed rating links."""
    by_kind: dict[str, Channel] = {"inapp": InboxChannel(db, in_force)}
    if settings.smtp_host:
        if settings.unsubscribe_secret is None:
            raise SystemExit("PROACT_UNSUBSCRIBE_SECRET is required with PROACT_SMTP_HOST (unsubscribe links)")
        links = UnsubscribeLinks(settings.public_url, settings.unsubscribe_secret.get_secret_value())
        mailer = Mailer.from_settings(settings)
        assert mailer is not None
        by_kind["email"] = EmailChannel(mailer, links, in_force)
    if settings.webhook_url:
        if settings.webhook_secret is None:
            raise SystemExit("PROACT_WEBHOOK_SECRET is required with PROACT_WEBHOOK_URL: requests are signed")
        hook = WebhookChannel(
            settings.webhook_url, settings.webhook_secret.get_secret_value(), settings.webhook_timeout_s, in_force
        )
        by_kind |= dict.fromkeys(("sms", "push", "phone", "webhook"), hook)
    ratings = None
    if settings.unsubscribe_secret is not None:  # the secret that signs every link in a message
        valid_for = timedelta(days=settings.rating_link_days)
        ratings = RatingLinks(settings.public_url, settings.unsubscribe_secret.get_secret_value(), valid_for)
    return Channels(OutboxChannel(settings.outbox_dir, in_force), by_kind, ratings)


async def main() -> None:
    settings = DispatcherSettings()
    setup_logging(SERVICE, settings.log_level)
    provider = setup_tracing(SERVICE, settings)
    setup_metrics(SERVICE, settings)
    client = mongo_client(settings)
    db = database(client, settings)
    await ensure_indexes(db, [Collections.MESSAGES, Collections.CONTACTS, Collections.INBOX, Collections.CALLBACKS])
    in_force = templates.InForce()  # the published templates over the built-in ones, kept current below
    broker = build_broker(settings, db, channels(settings, db, in_force), SystemClock())
    app = build_app(broker)
    server = uvicorn.Server(uvicorn.Config(app, host="0.0.0.0", port=settings.http_port, log_level="warning"))  # noqa: S104
    following = asyncio.create_task(template_store.follow(settings, settings.templates_refresh_s, in_force))
    try:
        await server.serve()  # runs the broker through the ASGI lifespan; SIGTERM drains it
    finally:
        following.cancel()
        await client.close()
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
