"""What customers do with proact's messages, on the real broker, FerretDB and an SMTP server:

- every e-mail carries a signed one-click unsubscribe link (RFC 8058); following it turns that
  consent off through ``customer.upserted``, and the dispatcher then sends no more e-mail;
- an in-app message lands once in the customer's inbox, which only the signed-in customer reads
  through the storefront; the first read is reported as ``message.opened``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.app import build_broker
from services.dispatcher.channels import Channels, EmailChannel, InboxChannel, OutboxChannel, UnsubscribeLinks
from services.storefront.app import create_app
from shared.clock import SystemClock
from shared.contract import Topics, decode
from shared.mail import Mailer
from shared.settings import DispatcherSettings, Settings, StorefrontSettings
from shared.signing import identity_signature, unsubscribe_token
from shared.store import INDEXES, Collections, Document, database, ensure_indexes, mongo_client
from tests.factories import event, uid
from tests.integration.conftest import Mailbox, isolated_topics
from tests.kafka_io import produce, read

pytestmark = pytest.mark.integration
UNSUBSCRIBE_SECRET = "unsubscribe-secret-for-tests"  # noqa: S105 - a test value
IDENTITY_SECRET = "identity-secret-for-tests"  # noqa: S105 - a test value


@pytest.fixture(scope="module")
async def topics(base_settings: Settings) -> AsyncIterator[Topics]:
    """Topics of their own: the dispatchers here read from the start, and the session's shared topics
    carry every other test's actions and profiles, a backlog that made these tests wait past their
    time-outs in the full suite."""
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("msg").replace("-", "")) as topics:
        yield topics


@pytest.fixture(scope="module")
async def own_db(base_settings: Settings) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of its own: the storefront seeds the built-in rules into the one it uses."""
    name = uid("messages").replace("-", "")
    client = mongo_client(base_settings)
    db = database(client, Settings(mongo_database=name))
    await ensure_indexes(db, INDEXES)
    yield db
    await client.drop_database(name)
    await client.close()


@pytest.fixture(scope="module")
async def storefront(topics: Topics, own_db: AsyncDatabase[Document], model_registry: Path) -> AsyncIterator[FastAPI]:
    settings = StorefrontSettings(
        topic_prefix=topics.prefix,
        mongo_database=own_db.name,
        model_dir=model_registry,
        unsubscribe_secret=SecretStr(UNSUBSCRIBE_SECRET),
        identity_secret=SecretStr(IDENTITY_SECRET),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(storefront: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=storefront), base_url="http://shop") as client:
        yield client


async def until(check: Any, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_an_email_unsubscribe_link_turns_the_consent_off_and_stops_further_email(
    topics: Topics, own_db: AsyncDatabase[Document], smtp: tuple[Mailbox, int], client: httpx.AsyncClient, tmp_path: Any
) -> None:
    inbox, port = smtp
    customer = uid("c")
    await produce(
        [
            event(
                "customer.upserted",
                subject=customer,
                email=f"{customer}@example.com",
                locale="pl-PL",
                consents={"email": True, "sms": True},
            )
        ],
        topics,
    )
    # what the engine's projection knows of the customer (the storefront keeps the other consents)
    await own_db[Collections.CUSTOMERS].insert_one({"_id": customer, "consents": {"email": True, "sms": True}})
    links = UnsubscribeLinks("http://shop", UNSUBSCRIBE_SECRET)
    email = EmailChannel(Mailer("127.0.0.1", port, "shop <shop@example.com>"), links=links)
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    broker = build_broker(settings, own_db, Channels(OutboxChannel(tmp_path), {"email": email}), SystemClock())

    def action(n: int) -> Any:
        return event(
            "action.requested",
            subject=customer,
            action_id=uid("a"),
            customer_id=customer,
            locale="pl-PL",
            idempotency_key=f"delay-notice:{customer}-{n}",
            context={"order_id": f"o-{n}"},
        )

    async with broker:
        await broker.start()

        async def contact_known() -> bool:
            return await own_db[Collections.CONTACTS].count_documents({"_id": customer}) == 1

        await until(contact_known)
        await produce([action(1)], topics)

        async def mailed() -> bool:
            return len(inbox.received) == 1

        await until(mailed)
        (mail,) = inbox.received
        url = mail["List-Unsubscribe"].strip("<>")
        assert url.startswith("http://shop/unsubscribe?token=")
        assert url.endswith("&lang=pl-PL")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"List-Unsubscribe: <{url}>".encode() in inbox.raw[0]  # on one line, not in encoded words
        assert f"Aby zrezygnować z tych e-maili: {url}" in mail.get_body(("plain",)).get_content()  # in Polish
        # and in the HTML part, as a link (the & of the query escaped, as HTML wants)
        html = mail.get_body(("html",)).get_content()
        assert f'<a href="{url.replace("&", "&amp;")}"' in html
        assert "Aby zrezygnować z tych e-maili:" in html

        target = urlsplit(url)
        page = await client.get(f"{target.path}?{target.query}")
        assert page.status_code == 200
        assert "Wypisz mnie" in page.text
        forged = unsubscribe_token("another secret", customer, "email")
        refused = await client.post("/unsubscribe", params={"token": forged}, content=b"List-Unsubscribe=One-Click")
        assert refused.status_code == 400
        assert refused.json()["field"] == "token"
        done = await client.post(
            f"{target.path}?{target.query}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200
        assert "Gotowe" in done.text

        async def consent_off() -> bool:  # the dispatcher's contact book read the storefront's event
            contact = await own_db[Collections.CONTACTS].find_one({"_id": customer})
            return contact is not None and contact["consents"]["email"] is False

        await until(consent_off, timeout_s=30)
        consents = (await own_db[Collections.CONTACTS].find_one({"_id": customer}))["consents"]
        assert consents["sms"] is True  # only the link's channel
        assert (await own_db[Collections.CONTACTS].find_one({"_id": customer}))["email"] == f"{customer}@example.com"
        await produce([action(2)], topics)

        def second_failed(records: list[Any]) -> bool:
            return sum(r.key == customer.encode() for r in records) >= 2

        outcomes = await read(topics.outcomes, second_failed)
    mine = [decode(r.value, r.headers) for r in outcomes if r.key == customer.encode()]
    assert [o.type for o in mine] == ["message.delivered", "message.failed"]
    assert "withdrawn consent" in mine[1].data.model_dump()["detail"]["reason"]
    assert len(inbox.received) == 1


async def test_an_inapp_message_reaches_only_the_signed_in_customers_inbox_once(
    topics: Topics, own_db: AsyncDatabase[Document], client: httpx.AsyncClient, tmp_path: Any
) -> None:
    customer, other = uid("c"), uid("c")
    key = f"delay-notice:{uid('o')}"
    action_id = uid("a")
    message = event(
        "action.requested",
        subject=customer,
        action_id=action_id,
        customer_id=customer,
        channel="inapp",
        locale="lt-LT",
        idempotency_key=key,
        context={"order_id": "o-77"},
    )
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    channels = Channels(OutboxChannel(tmp_path), {"inapp": InboxChannel(own_db)})
    async with build_broker(settings, own_db, channels, SystemClock()) as broker:
        await broker.start()
        await produce([message, message], topics)  # consumed twice: one message in the inbox
        await read(topics.outcomes, lambda rs: any(r.key == customer.encode() for r in rs), settle_s=2)
    assert await own_db[Collections.INBOX].count_documents({"customer_id": customer}) == 1

    me = {"X-Proact-Identity": identity_signature(IDENTITY_SECRET, customer)}
    answer = await client.get("/v1/inbox", params={"customer_id": customer}, headers=me)
    assert answer.status_code == 200
    body = answer.json()
    assert body["unread"] == 1
    (item,) = body["messages"]
    assert item["title"] == "Jūsų užsakymas o-77 vėluoja"
    assert item["locale"] == "lt"
    assert not item["read"]

    for who, headers in ((other, me), (customer, {"X-Proact-Identity": identity_signature("wrong", customer)})):
        refused = await client.get("/v1/inbox", params={"customer_id": who}, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["field"] == "X-Proact-Identity"
    missing = await client.get("/v1/inbox", params={"customer_id": customer})
    assert missing.status_code == 422

    for _ in range(2):  # read twice: one message.opened
        marked = await client.post(f"/v1/inbox/{item['id']}/read", params={"customer_id": customer}, headers=me)
        assert marked.status_code == 204
    other_me = {"X-Proact-Identity": identity_signature(IDENTITY_SECRET, other)}
    not_theirs = await client.post(f"/v1/inbox/{item['id']}/read", params={"customer_id": other}, headers=other_me)
    assert not_theirs.status_code == 404
    assert (await client.get("/v1/inbox", params={"customer_id": customer}, headers=me)).json()["unread"] == 0

    def opened(records: list[Any]) -> bool:
        return any(r.key == customer.encode() and b"message.opened" in r.value for r in records)

    outcomes = await read(topics.outcomes, opened, settle_s=2)
    types = [decode(r.value, r.headers).type for r in outcomes if r.key == customer.encode()]
    assert types == ["message.delivered", "message.opened"]
