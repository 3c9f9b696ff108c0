"""The dispatcher on the real broker and FerretDB: one delivery per action, however often it is read."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.app import ATTEMPT_HEADER, RETRY_AT_HEADER, build_broker
from services.dispatcher.channels import OutboxChannel
from services.dispatcher.delivery import deliver
from shared.clock import SystemClock
from shared.contract import Topics, decode, encode
from shared.settings import DispatcherSettings, Settings
from shared.store import Collections, Document, database, mongo_client
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
    message = {"idempotency_key": "k-1", "channel": "sms", "customer_id": "c-1", "template_id": "checkin"}
    message |= {"locale": "pl-PL", "context": {"order_id": "o-1 & co"}}
    assert await OutboxChannel(tmp_path).send(message) is True
    assert await OutboxChannel(tmp_path).send(message) is False
    (line,) = (tmp_path / "sms.ndjson").read_bytes().splitlines()
    # what was sent, as the customer reads it: in Polish, the value as it is (not HTML-escaped)
    rendered = orjson.loads(line)["rendered"]
    assert rendered["locale"] == "pl"
    assert rendered["subject"] == "Czy wszystko w porządku z zamówieniem o-1 & co?"


async def test_the_outbox_index_is_bounded_and_rebuilt_from_the_files_tail(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path, index_size=50)
    for i in range(120):
        message = {"idempotency_key": f"k-{i}", "channel": "sms", "customer_id": "c", "template_id": "checkin"}
        assert await outbox.send(message) is True
    assert len(outbox._delivered) == 50
    size = (tmp_path / "sms.ndjson").stat().st_size
    again = OutboxChannel(tmp_path, index_size=1_000, tail_bytes=size // 4)  # reads a quarter of the file
    assert 20 <= len(again._delivered) <= 31
    assert "k-119" in again._delivered
    assert "k-0" not in again._delivered
    assert await again.send({"idempotency_key": "k-119", "channel": "sms", "customer_id": "c"}) is False


async def test_an_action_waits_for_its_not_before(topics: Topics, db: AsyncDatabase[Document], tmp_path: Path) -> None:
    cid = uid("c")
    not_before = datetime.now(UTC) + timedelta(seconds=3)
    action = event(
        "action.requested",
        subject=cid,
        action_id=uid("a"),
        idempotency_key=f"checkin:{uid('o')}",
        not_before=not_before.isoformat(),
    )
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
    await db[Collections.MESSAGES].insert_one(
        {"_id": aid, "action_id": aid, "idempotency_key": key, "customer_id": cid, "status": "retrying", "attempts": 1}
    )
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


class CuttableLink:
    """A TCP relay to MongoDB that a test can cut: open connections reset, new ones refused."""

    def __init__(self, mongo_url: str) -> None:
        address = urlsplit(mongo_url)
        self.target = (address.hostname or "127.0.0.1", address.port or 27017)
        self.down = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self, seconds: float) -> None:
        self.down = True
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()
        asyncio.get_running_loop().call_later(seconds, setattr, self, "down", False)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()


async def test_a_send_whose_record_fails_while_mongodb_is_away_is_recorded_once_it_is_back(
    base_settings: Settings, tmp_path: Path
) -> None:
    """The provider accepted the message, then MongoDB went away before the delivery was written:
    the dispatcher keeps trying to write it instead of failing the action, which would be read again
    and sent a second time (``make chaos`` found one such duplicate when FerretDB was killed)."""
    link = CuttableLink(base_settings.mongo_url.get_secret_value())
    port = await link.start()
    client = mongo_client(base_settings.model_copy(update={"mongo_url": SecretStr(f"mongodb://127.0.0.1:{port}")}))
    db = database(client, base_settings)
    outbox = OutboxChannel(tmp_path)

    class LinkCutAfterSend:
        name = "outbox"

        async def send(self, message: dict[str, Any]) -> bool:
            first = await outbox.send(message)
            link.cut(1.5)  # MongoDB is unreachable for 1.5 s from the moment the provider accepted
            return first

    action = event("action.requested", subject=uid("c"), action_id=uid("a"), idempotency_key=uid("k"))
    try:
        result = await deliver(action.data, db, LinkCutAfterSend(), SystemClock())  # type: ignore[arg-type]
        assert result.outcome_type == "message.delivered"
        record = await db[Collections.MESSAGES].find_one({"_id": action.data.action_id})  # type: ignore[attr-defined]
        assert record is not None
        assert record["status"] == "delivered"
        lines = (tmp_path / "email.ndjson").read_bytes().splitlines()
        assert len(lines) == 1
    finally:
        await client.close()
        await link.stop()


async def test_an_outcome_recorded_but_not_published_before_a_crash_is_published_once(
    topics: Topics, db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    """What a dispatcher killed between recording a delivery and publishing its outcome leaves: the
    message delivered, its outcome not out. The action is read again: the outcome goes out, once,
    under the id it always has, and the message is not sent a second time."""
    cid, action_id = uid("c"), uid("a")
    key = f"delay-notice:{uid('o')}"
    action = event("action.requested", subject=cid, action_id=action_id, idempotency_key=key)
    await db[Collections.MESSAGES].insert_one(
        {
            "_id": action_id,
            "action_id": action_id,
            "idempotency_key": key,
            "customer_id": cid,
            "status": "delivered",
            "via": "outbox",
            "outcome_published": False,
            "channel": "email",
        }
    )
    settings = DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher"))
    broker = build_broker(settings, db, OutboxChannel(tmp_path), SystemClock())
    async with broker:
        await broker.start()
        await produce([action, action], topics)  # read twice, as after a second restart
        outcomes = await read(topics.outcomes, lambda rs: any(r.key == cid.encode() for r in rs), settle_s=3)
    published = [decode(r.value, r.headers) for r in outcomes if r.key == cid.encode()]
    assert [(e.type, e.id) for e in published] == [("message.delivered", f"{action_id}:message.delivered")]
    assert not (tmp_path / "email.ndjson").exists()  # not delivered again
    doc = await db[Collections.MESSAGES].find_one({"_id": action_id})
    assert doc is not None
    assert doc["outcome_published"] is True
