"""The admin's overview, dead letters and the interaction log on the real broker and FerretDB.

The overview's figures are checked against counts this test makes itself from the documents and
records it wrote (not with MongoDB's or FerretDB's aggregation); the dead letters are listed without
their values and one is replayed to its topic by a publisher; the projector keeps pop-up outcomes
and callback requests, without the callback's phone number."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.admin import access
from services.admin.app import create_app
from services.projector.app import Projector
from shared.contract import Topics
from shared.settings import AdminSettings, EngineSettings, Settings
from shared.store import Collections, Document, mongo_client
from tests.factories import event, uid
from tests.integration.conftest import isolated_topics
from tests.kafka_io import BOOTSTRAP, committed_reader, produce

pytestmark = pytest.mark.integration
RULES = ("delay-notice", "post-purchase-checkin", "churn-winback")
CHANNELS = ("email", "sms", "inapp")
STATUSES = ("delivered", "delivered", "failed", "holdout", "pending")


@pytest.fixture(scope="module")
async def shop(base_settings: Settings) -> AsyncIterator[tuple[FastAPI, Topics, dict[str, Any]]]:
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("ov")) as topics:
        name = f"adminov{uuid.uuid4().hex[:10]}"
        app = create_app(AdminSettings(mongo_database=name, topic_prefix=topics.prefix))
        async with app.router.lifespan_context(app):
            written = await _history(app, topics)
            yield app, topics, written
        client = mongo_client(base_settings)
        await client.drop_database(name)
        await client.close()


async def _history(app: FastAPI, topics: Topics) -> dict[str, Any]:
    """Nine days of messages, decisions and interactions at random times, and dead letters today and
    three days ago."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    at = [now - timedelta(seconds=rng.uniform(0, 9 * 86400)) for _ in range(400)]
    messages = [
        {
            "_id": f"m{i}",
            "idempotency_key": f"k{i}",
            "rule_id": rng.choice(RULES),
            "channel": rng.choice(CHANNELS),
            "status": (status := rng.choice(STATUSES)),
            "holdout": status == "holdout",
            "customer_id": f"c{i}",
            "created_at": t,
        }
        for i, t in enumerate(at[:200])
    ]
    decisions = [
        {
            "_id": f"d{i}",
            "rule_id": rng.choice(RULES),
            "channel": rng.choice(CHANNELS),
            "outcome": rng.choice(("suppressed", "suppressed", "fired", "not_matched")),
            "guard": "cooldown",
            "customer_id": f"c{i}",
            "at": t.isoformat(),
        }
        for i, t in enumerate(at[200:320])
    ]
    interactions = [
        {"_id": f"i{i}", "type": rng.choice(("popup.shown", "popup.accepted", "callback.requested")), "at": t}
        for i, t in enumerate(at[320:])
    ]
    db = app.state.db
    await db[Collections.MESSAGES].insert_many(messages)
    await db[Collections.DECISIONS].insert_many(decisions)
    await db[Collections.INTERACTIONS].insert_many(interactions)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    dead: list[datetime] = []
    try:
        # in time order, as a consumer writes them: each when it refuses the record
        for when, n in ((now - timedelta(days=12), 2), (now - timedelta(days=3), 4), (now, 5)):
            for j in range(n):
                headers = [
                    ("proact_dlq_error_type", b"InvalidEvent"),
                    ("proact_dlq_reason", f"data.amount: too large ({j})".encode()),
                    ("proact_dlq_field", b"data.amount"),
                    ("proact_dlq_topic", topics.orders.encode()),
                ]
                value = orjson.dumps({"type": "order.placed", "id": f"bad-{when.day}-{j}", "data": {"email": "x@y.z"}})
                await producer.send_and_wait(
                    topics.dlq(topics.orders),
                    value,
                    key=b"c1",
                    headers=headers,
                    timestamp_ms=int(when.timestamp() * 1000),
                )
                dead.append(when)
    finally:
        await producer.stop()
    return {"now": now, "messages": messages, "decisions": decisions, "interactions": interactions, "dead": dead}


def _day(t: datetime, now: datetime) -> int | None:
    """How many UTC days before today ``t`` was: 0 today, None beyond a week."""
    back = (now.date() - t.astimezone(UTC).date()).days
    return back if 0 <= back < 7 else None


async def test_the_overview_counts_what_was_written(shop: tuple[FastAPI, Topics, dict[str, Any]]) -> None:
    app, _, written = shop
    key, _ = await access.create_key(app.state.db, "viewer", "viewer", by="tests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        got = (await http.get("/v1/overview", headers={"Authorization": f"Bearer {key}"})).json()
    now = written["now"]
    expected: Counter[tuple[str, int]] = Counter()
    per_rule: Counter[tuple[str, str, str, str]] = Counter()
    for m in written["messages"]:
        day = _day(m["created_at"], now)
        figure = {"delivered": "sent", "failed": "failed", "holdout": "held_out"}.get(m["status"])
        if day is None or figure is None:
            continue
        expected[(figure, day)] += 1
        per_rule[(m["rule_id"], m["channel"], figure, "week")] += 1
        if day == 0:
            per_rule[(m["rule_id"], m["channel"], figure, "today")] += 1
    for d in written["decisions"]:
        day = _day(datetime.fromisoformat(d["at"]), now)
        if day is not None and d["outcome"] == "suppressed":
            expected[("suppressed", day)] += 1
            per_rule[(d["rule_id"], d["channel"], "suppressed", "week")] += 1
            if day == 0:
                per_rule[(d["rule_id"], d["channel"], "suppressed", "today")] += 1
    names = {"popup.shown": "popups_shown", "popup.accepted": "popups_accepted", "callback.requested": "callbacks"}
    for i in written["interactions"]:
        if (day := _day(i["at"], now)) is not None:
            expected[(names[i["type"]], day)] += 1
    for t in written["dead"]:
        if (day := _day(t, now)) is not None:
            expected[("dead_letters", day)] += 1

    assert len(got["days"]) == 7
    assert got["days"][-1] == now.date().isoformat()
    for figure, series in got["series"].items():
        assert series == [expected[(figure, back)] for back in range(6, -1, -1)], figure
        assert got["today"][figure] == expected[(figure, 0)]
        assert got["week"][figure] == sum(expected[(figure, back)] for back in range(7))
    assert got["week"]["dead_letters"] == 9  # five today, four three days ago; two older ones left out
    for row in got["by_rule_channel"]:
        for span in ("today", "week"):
            for figure, n in row[span].items():
                assert n == per_rule[(row["rule_id"], row["channel"], figure, span)], (row, span, figure)
    assert sum(r["week"]["sent"] for r in got["by_rule_channel"]) == got["week"]["sent"] > 0
    assert got["dead_letters_by_topic"][_orders(shop)] == {"today": 5, "week": 9}


def _orders(shop: tuple[FastAPI, Topics, dict[str, Any]]) -> str:
    return shop[1].orders


async def test_dead_letters_are_listed_without_values_and_a_publisher_replays_one(
    shop: tuple[FastAPI, Topics, dict[str, Any]],
) -> None:
    app, topics, _ = shop
    keys = {r: (await access.create_key(app.state.db, r, r, by="tests"))[0] for r in ("viewer", "publisher")}
    as_ = {r: {"Authorization": f"Bearer {k}"} for r, k in keys.items()}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        listed = (await http.get("/v1/dead-letters", headers=as_["viewer"])).json()
        assert len(listed) == 11
        newest = listed[0]
        assert (newest["topic"], newest["error_type"], newest["field"]) == (
            topics.orders,
            "InvalidEvent",
            "data.amount",
        )
        assert newest["reason"].startswith("data.amount: too large")
        assert newest["event_type"] == "order.placed"
        assert "x@y.z" not in orjson.dumps(listed).decode()  # the value, and the address in it, stay out
        target = {k: newest[k] for k in ("dlq_topic", "partition", "offset")}

        assert (await http.post("/v1/dead-letters/replay", json=target, headers=as_["viewer"])).status_code == 403
        wrong = await http.post(
            "/v1/dead-letters/replay", json={**target, "dlq_topic": topics.orders}, headers=as_["publisher"]
        )
        assert wrong.status_code == 422
        assert wrong.json()["field"] == "dlq_topic"
        missing = await http.post(
            "/v1/dead-letters/replay", json={**target, "offset": 10_000}, headers=as_["publisher"]
        )
        assert missing.status_code == 404
        done = await http.post("/v1/dead-letters/replay", json=target, headers=as_["publisher"])
        assert done.status_code == 200, done.text
        assert done.json()["to"] == topics.orders
        audit = (
            await http.get("/v1/audit", params={"subject": topics.dlq(topics.orders)}, headers=as_["viewer"])
        ).json()
        assert audit[0]["action"] == "dead_letter.replayed"

    reader = committed_reader(topics.orders)
    await reader.start()
    try:
        records = [r for batch in (await reader.getmany(timeout_ms=5000)).values() for r in batch]
    finally:
        await reader.stop()
    (replayed,) = records
    headers = dict(replayed.headers)
    origin = f"{target['dlq_topic']}:{target['partition']}:{target['offset']}"
    assert headers["proact_replayed_from"] == origin.encode()
    assert not any(k.startswith("proact_dlq_") for k in headers)
    assert orjson.loads(replayed.value)["id"] == newest["event_id"]


async def test_the_projector_keeps_pop_up_outcomes_and_callbacks_without_numbers(topics: Topics, db: Any) -> None:
    visitor = uid("v")
    events = [
        event("popup.shown", subject=visitor, visitor_id=visitor, channel="popup"),
        event("popup.accepted", subject=visitor, visitor_id=visitor, channel="popup"),
        event("callback.requested", subject=visitor, visitor_id=visitor, phone="+48601234567"),
        event("message.delivered", subject="c-1", customer_id="c-1", channel="email"),
    ]
    await produce(events, topics)
    await produce(events[:1], topics)  # the same event again: a duplicate, kept once
    projector = Projector(EngineSettings(topic_prefix=topics.prefix, group_id=uid("g")), db, flush_interval_s=0.2)
    running = asyncio.create_task(projector.run())
    found: list[Document] = []
    try:
        for _ in range(150):
            found = [d async for d in db[Collections.INTERACTIONS].find({"visitor_id": visitor})]
            if len(found) == 3:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        found = [d async for d in db[Collections.INTERACTIONS].find({"visitor_id": visitor})]
    finally:
        projector.stop()
        await asyncio.wait_for(running, 30)
    assert sorted(d["type"] for d in found) == ["callback.requested", "popup.accepted", "popup.shown"]
    assert "+48601234567" not in str(found)
    assert {d["_id"] for d in found} == {e.id for e in events[:3]}
