"""The dispatcher on the real broker and FerretDB: one delivery per action, however often it is read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.app import ATTEMPT_HEADER, RETRY_AT_HEADER, build_broker
from services.dispatcher.channels import OutboxChannel
from shared.clock import SystemClock
from shared.contract import Topics, decode, encode
from shared.settings import DispatcherSettings
from shared.store import Collections, Document
from tests.factories import event, uid
from tests.kafka_io import produce, produce_raw, read

pytestmark = pytest.mark.integration


async def test_an_action_read_twice_is_delivered_once(
    topics: Topics, db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    cid = uid("c")
    key = f"delay-notice:{uid('o')}"
    action = event("action.requested", subject=cid, action_id=uid("a"), idempotency_key=key)
    replayed = event(
        "action.requested", subject=cid, action_id=action.data.model_dump()["action_id"], idempotency_key=key
    )
    await produce_raw(topics.actions, b"not an event", cid.encode())
    await produce([action], topics)
    # the replay as another producer may write it: structured JSON without a content-type header
    await produce_raw(topics.actions, encode(replayed)[1], cid.encode())
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    broker = build_broker(settings, db, OutboxChannel(tmp_path), SystemClock())
    async with broker:
        await broker.start()
        outcomes = await read(topics.outcomes, lambda rs: any(r.key == cid.encode() for r in rs), settle_s=2)
        dead = await read(topics.dlq(topics.actions), lambda rs: any(r.key == cid.encode() for r in rs))
    delivered = [decode(r.value, r.headers) for r in outcomes if r.key == cid.encode()]
    assert [e.type for e in delivered] == ["message.delivered"]
    lines = [orjson.loads(line) for line in (tmp_path / "email.ndjson").read_bytes().splitlines()]
    assert [line["idempotency_key"] for line in lines] == [key]
    doc = await db[Collections.MESSAGES].find_one({"idempotency_key": key})
    assert doc is not None
    assert doc["status"] == "delivered"
    (bad,) = [r for r in dead if r.key == cid.encode()]
    assert b"not valid JSON" in dict(bad.headers)["proact_dlq_reason"]


async def test_the_outbox_remembers_deliveries_across_restarts(tmp_path: Path) -> None:
    message = {"idempotency_key": "k-1", "channel": "sms", "customer_id": "c-1"}
    assert await OutboxChannel(tmp_path).send(message) is True
    assert await OutboxChannel(tmp_path).send(message) is False
    assert len((tmp_path / "sms.ndjson").read_bytes().splitlines()) == 1


async def test_an_action_waits_for_its_not_before(topics: Topics, db: AsyncDatabase[Document], tmp_path: Path) -> None:
    cid = uid("c")
    not_before = datetime.now(UTC) + timedelta(seconds=3)
    action = event("action.requested", subject=cid, action_id=uid("a"), idempotency_key=f"checkin:{uid('o')}",
                   not_before=not_before.isoformat())  # fmt: skip
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    broker = build_broker(settings, db, OutboxChannel(tmp_path), SystemClock())
    async with broker:
        await broker.start()
        await produce([action], topics)
        outcomes = await read(topics.outcomes, lambda rs: any(r.key == cid.encode() for r in rs))
    (delivered,) = [decode(r.value, r.headers) for r in outcomes if r.key == cid.encode()]
    assert delivered.type == "message.delivered"
    assert delivered.time >= not_before  # held back until then, not sent at once


async def test_the_contact_book_reads_profiles_without_a_content_type(
    topics: Topics, db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    """A profile as another producer may write it, structured JSON without headers, is read, not
    refused and retried for ever (which kept the subscriber spinning)."""
    cid = uid("c")
    profile = event("customer.upserted", subject=cid, email=f"{cid}@example.com", consents={"email": True})
    await produce_raw(topics.customers, encode(profile)[1], cid.encode())
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    async with build_broker(settings, db, OutboxChannel(tmp_path), SystemClock()) as broker:
        await broker.start()
        for _ in range(100):
            if await db[Collections.CONTACTS].find_one({"_id": cid}):
                break
            await asyncio.sleep(0.1)
    contact = await db[Collections.CONTACTS].find_one({"_id": cid})
    assert contact is not None
    assert contact["email"] == f"{cid}@example.com"


async def test_the_first_open_and_click_of_a_message_are_recorded_on_it(
    topics: Topics, db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    cid, aid = uid("c"), uid("a")
    action = event("action.requested", subject=cid, action_id=aid, idempotency_key=f"winback:{cid}")
    first = datetime.now(UTC).replace(microsecond=0)
    opened = [
        event("message.opened", cid, first + timedelta(minutes=m), action_id=aid, rule_id="winback") for m in (0, 5)
    ]
    clicked = event("message.clicked", cid, action_id=aid, rule_id="winback")
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    async with build_broker(settings, db, OutboxChannel(tmp_path), SystemClock()) as broker:
        await broker.start()
        await produce([action], topics)
        await read(topics.outcomes, lambda rs: any(r.key == cid.encode() for r in rs))
        await produce([*opened, clicked], topics)
        for _ in range(100):
            doc = await db[Collections.MESSAGES].find_one({"_id": aid})
            if doc and doc.get("opened_at") and doc.get("clicked_at"):
                break
            await asyncio.sleep(0.1)
    assert doc is not None
    assert doc["status"] == "delivered"
    assert doc["opened_at"] == first  # the first open, not the later one
    assert doc["clicked_at"] is not None


async def test_an_action_read_again_after_its_retry_was_scheduled_is_left_to_the_retry(
    topics: Topics, db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    """A restart re-reads an action whose next attempt already waits on the retry topic: the re-read
    copy is ignored and the retry delivers it, once (the two used to race and both send)."""
    cid, aid = uid("c"), uid("a")
    key = f"winback:{cid}"
    action = event("action.requested", subject=cid, action_id=aid, idempotency_key=key)
    # what the first attempt left: the message claimed and handed over to the retry topic
    await db[Collections.MESSAGES].insert_one({"_id": aid, "action_id": aid, "idempotency_key": key,
                                               "customer_id": cid, "status": "retrying", "attempts": 1})  # fmt: skip
    _, value, headers = encode(action)
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    async with build_broker(settings, db, OutboxChannel(tmp_path), SystemClock()) as broker:
        await broker.start()
        await produce([action], topics)  # read again from the actions topic
        await asyncio.sleep(3)
        assert not (tmp_path / "email.ndjson").exists()
        retry_headers = [*headers, (ATTEMPT_HEADER, b"2"), (RETRY_AT_HEADER, datetime.now(UTC).isoformat().encode())]
        await produce_raw(topics.actions_retry, value, cid.encode(), retry_headers)
        await read(topics.outcomes, lambda rs: any(r.key == cid.encode() for r in rs), settle_s=2)
    lines = (tmp_path / "email.ndjson").read_bytes().splitlines()
    assert [orjson.loads(line)["idempotency_key"] for line in lines] == [key]
    assert (await db[Collections.MESSAGES].find_one({"_id": aid}))["status"] == "delivered"
