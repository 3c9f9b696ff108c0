"""E-mail on the real broker, FerretDB and a real SMTP server (aiosmtpd, started here): the contact
book fills from ``customer.upserted``, a delay notice arrives in the customer's language, once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.app import build_broker
from services.dispatcher.channels import Channels, EmailChannel, OutboxChannel
from shared.clock import SystemClock
from shared.contract import Topics, decode
from shared.mail import Mailer
from shared.settings import DispatcherSettings
from shared.store import Collections, Document
from tests.factories import event, uid
from tests.integration.conftest import Mailbox
from tests.kafka_io import produce, read

pytestmark = pytest.mark.integration


async def test_a_delay_notice_arrives_as_an_email_in_the_customers_language_once(
    topics: Topics, db: AsyncDatabase[Document], smtp: tuple[Mailbox, int], tmp_path: Any
) -> None:
    inbox, port = smtp
    polish, gone = uid("c"), uid("c")
    await produce(
        [
            event(
                "customer.upserted",
                subject=polish,
                email=f"{polish}@example.com",
                locale="pl-PL",
                consents={"email": True},
            ),
            event("customer.upserted", subject=gone, email=f"{gone}@example.com", consents={"email": False}),
        ],
        topics,
    )
    order = uid("o")
    key = f"delay-notice:{order}"
    context = {"order_id": order, "estimated_delivery": "2026-12-01T10:00:00+00:00"}
    action = event(
        "action.requested",
        subject=polish,
        action_id=uid("a"),
        customer_id=polish,
        locale="pl-PL",
        idempotency_key=key,
        context=context,
    )
    again = event(
        "action.requested",
        subject=polish,
        action_id=action.data.model_dump()["action_id"],
        customer_id=polish,
        locale="pl-PL",
        idempotency_key=key,
        context=context,
    )
    withdrawn = event(
        "action.requested",
        subject=gone,
        action_id=uid("a"),
        customer_id=gone,
        idempotency_key=f"delay-notice:{uid('o')}",
    )

    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    channels = Channels(
        OutboxChannel(tmp_path), {"email": EmailChannel(Mailer("127.0.0.1", port, "shop <shop@example.com>"))}
    )
    broker = build_broker(settings, db, channels, SystemClock())
    async with broker:
        await broker.start()
        for _ in range(100):  # the contact book has read both profiles
            if await db[Collections.CONTACTS].count_documents({"_id": {"$in": [polish, gone]}}) == 2:
                break
            await asyncio.sleep(0.1)
        await produce([action, again, withdrawn], topics)
        wanted = {polish.encode(), gone.encode()}
        outcomes = await read(topics.outcomes, lambda rs: {r.key for r in rs} >= wanted, settle_s=2)

    (mail,) = inbox.received
    assert mail["To"] == f"{polish}@example.com"
    assert mail["Subject"] == f"Twoje zamówienie {order} się opóźnia"
    assert mail["Content-Language"] == "pl"
    # multipart/alternative: the text first, then the HTML in the shared layout, both in Polish
    assert mail.get_content_type() == "multipart/alternative"
    text, html = (part for part in mail.iter_parts())
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert "2026-12-01" in text.get_content()
    page = html.get_content()
    assert '<html lang="pl">' in page
    assert f'color:#111827;">Twoje zamówienie {order} się opóźnia</h1>' in page
    assert "2026-12-01" in page
    by_customer = {r.key: decode(r.value, r.headers) for r in outcomes if r.key in wanted}
    assert by_customer[polish.encode()].type == "message.delivered"
    failed = by_customer[gone.encode()]
    assert failed.type == "message.failed"
    assert "withdrawn consent" in failed.data.model_dump()["detail"]["reason"]


async def test_an_action_ahead_of_the_contact_book_is_retried_and_delivered(
    topics: Topics, db: AsyncDatabase[Document], smtp: tuple[Mailbox, int], tmp_path: Any
) -> None:
    """The profile reaches the contact book after the action (a restart, or events moments apart):
    a passing failure, tried again, not a message lost for want of an address."""
    inbox, port = smtp
    cid = uid("c")
    action = event(
        "action.requested",
        subject=cid,
        action_id=uid("a"),
        customer_id=cid,
        idempotency_key=f"delay-notice:{uid('o')}",
        context={"order_id": "o-1"},
    )
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"), retry_base_s=0.2)
    mailer = Mailer("127.0.0.1", port, "shop <shop@example.com>")
    broker = build_broker(
        settings, db, Channels(OutboxChannel(tmp_path), {"email": EmailChannel(mailer)}), SystemClock()
    )
    async with broker:
        await broker.start()
        await produce([action], topics)
        for _ in range(100):  # the first attempt found no contact and will be retried
            message = await db[Collections.MESSAGES].find_one({"customer_id": cid})
            if message and message["status"] == "retrying":
                break
            await asyncio.sleep(0.1)
        assert message is not None
        assert message["reason"] == "the contact book does not know this customer yet"
        await produce(
            [event("customer.upserted", subject=cid, email=f"{cid}@example.com", consents={"email": True})], topics
        )
        await read(topics.outcomes, lambda rs: any(r.key == cid.encode() for r in rs), settle_s=1)
    assert [m["To"] for m in inbox.received] == [f"{cid}@example.com"]
    assert (await db[Collections.MESSAGES].find_one({"customer_id": cid}))["status"] == "delivered"


async def test_a_message_that_cannot_be_composed_fails_for_good_and_the_partition_goes_on(
    topics: Topics, db: AsyncDatabase[Document], smtp: tuple[Mailbox, int], tmp_path: Any
) -> None:
    """The delay notice's subject shows the order id; one with a line break cannot be a mail header.
    That action fails once, naming the template, and is not read again; the next one is delivered."""
    inbox, port = smtp
    cid = uid("c")
    await produce(
        [event("customer.upserted", subject=cid, email=f"{cid}@example.com", consents={"email": True})], topics
    )
    broken, fine = uid("a"), uid("a")
    actions = [
        event(
            "action.requested",
            subject=cid,
            action_id=a,
            customer_id=cid,
            idempotency_key=f"delay-notice:{a}",
            template_id="delay_notice",
            context={"order_id": order_id},
        )
        for a, order_id in ((broken, "o-1\r\nBcc: everyone@example.com"), (fine, "o-2"))
    ]
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    mailer = EmailChannel(Mailer("127.0.0.1", port, "shop <shop@example.com>"))
    broker = build_broker(settings, db, Channels(OutboxChannel(tmp_path), {"email": mailer}), SystemClock())
    async with broker:
        await broker.start()
        for _ in range(100):
            if await db[Collections.CONTACTS].count_documents({"_id": cid}) == 1:
                break
            await asyncio.sleep(0.1)
        await produce(actions, topics)
        outcomes = await read(topics.outcomes, lambda rs: sum(r.key == cid.encode() for r in rs) >= 2, settle_s=3)
    by_action = {
        e.data.model_dump()["action_id"]: e
        for r in outcomes
        if r.key == cid.encode()
        for e in [decode(r.value, r.headers)]
    }
    assert len(by_action) == 2  # one outcome each: the broken one was not read again and again
    assert by_action[broken].type == "message.failed"
    assert "template delay_notice" in by_action[broken].data.model_dump()["detail"]["reason"]
    assert by_action[fine].type == "message.delivered"
    assert [m["Subject"] for m in inbox.received if m["To"] == f"{cid}@example.com"] == [
        "Your order o-2 is running late"
    ]
