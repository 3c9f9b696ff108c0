"""The engine under faults: 50,000 events stream in while engine processes are killed with SIGKILL and
restarted, with two engines sharing the partitions part of the time. Afterwards every customer's
counters, in the changelog and in the MongoDB projection, equal what the input says, and no action
appears twice for a read_committed reader."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.contract import EVENT_TYPES, Topics, encode, new_event
from shared.settings import Settings
from shared.store import Collections, mongo_client
from tests.e2e.stack import Stack, free_port, own_stack
from tests.kafka_io import BOOTSTRAP, committed_reader

pytestmark = pytest.mark.e2e
EVENTS = 50_000
CUSTOMERS = 400


@pytest.fixture
async def engines(tmp_path: Path, model_registry: Path) -> AsyncIterator[Stack]:
    async with own_stack("fault", tmp_path, model_registry) as stack:
        yield stack


def workload(rng: random.Random) -> tuple[list[tuple[str, bytes, bytes]], Counter[str], Counter[str], set[str]]:
    """The input, the orders and tickets each customer should end with, and the orders that are late."""
    now = datetime.now(UTC)
    out: list[tuple[str, bytes, bytes]] = []
    orders: Counter[str] = Counter()
    tickets: Counter[str] = Counter()
    late: set[str] = set()

    def add(type_: str, subject: str, data: dict[str, object]) -> None:
        key, value, _ = encode(new_event(type_, subject, data, source="fault-test"))
        out.append((EVENT_TYPES[type_][0], key, value))

    for c in range(CUSTOMERS):
        add(
            "customer.upserted",
            f"c{c}",
            {"customer_id": f"c{c}", "email": f"c{c}@example.com", "consents": {"email": True}},
        )
    while len(out) < EVENTS:
        cid = f"c{rng.randrange(CUSTOMERS)}"
        r = rng.random()
        if r < 0.25:
            oid = f"o{len(out)}"
            ship_by = now + timedelta(seconds=rng.uniform(3, 20)) if rng.random() < 0.1 else now + timedelta(days=3)
            total = {"amount": "9.99", "currency": "EUR"}
            add(
                "order.placed",
                cid,
                {"order_id": oid, "customer_id": cid, "total": total, "promised_ship_by": ship_by.isoformat()},
            )
            orders[cid] += 1
            if ship_by < now + timedelta(days=1):
                late.add(oid)
        elif r < 0.35:
            add("ticket.opened", cid, {"ticket_id": f"t{len(out)}", "customer_id": cid})
            tickets[cid] += 1
        else:
            visitor = f"v{rng.randrange(CUSTOMERS * 2)}"
            add(
                "page.viewed",
                visitor,
                {"visitor_id": visitor, "session_id": f"s-{visitor}", "url": "/p/1", "page_type": "product"},
            )
    return out, orders, tickets, late


async def stream(topics: Topics, events: list[tuple[str, bytes, bytes]], rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, linger_ms=5)
    await producer.start()
    start = asyncio.get_running_loop().time()
    for i, (attr, key, value) in enumerate(events):
        await producer.send(getattr(topics, attr), value, key=key)
        if i % 500 == 0:
            ahead = start + i / rate - asyncio.get_running_loop().time()
            if ahead > 0:
                await asyncio.sleep(ahead)
    await producer.stop()


async def committed(group: str, topics: Topics, only: tuple[str, ...] | None = None) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        except KafkaError:  # a new group's coordinator is not known yet: nothing committed so far
            return 0
        produced = only or (topics.customers, topics.orders, topics.browsing, topics.support)
        return sum(m.offset for tp, m in offsets.items() if tp.topic in produced and m.offset > 0)
    finally:
        await admin.close()


async def read_all(topic: str) -> list[tuple[bytes, bytes | None]]:
    consumer = committed_reader(topic)
    await consumer.start()
    out: list[tuple[bytes, bytes | None]] = []
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
        while True:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10000)).values():
                out += [(r.key, r.value) for r in records]
            positions = {tp: await consumer.position(tp) for tp in consumer.assignment()}
            if all(positions[tp] >= end[tp] for tp in end):
                return out
    finally:
        await consumer.stop()


async def test_sigkills_and_rebalances_lose_and_duplicate_nothing(engines: Stack) -> None:
    rng = random.Random(20261123)
    topics = Topics(prefix=engines.env["PROACT_TOPIC_PREFIX"])
    events, orders, tickets, late = workload(rng)
    second = {"PROACT_INSTANCE_ID": "engine-b", "PROACT_ENGINE_HTTP_PORT": str(free_port())}
    engines.start("engine")
    engines.start("projector")
    # Customers exist before they order, as in a real shop: topics have no order between them, and a
    # deadline judged before the customer's consents arrive is (rightly) suppressed, not sent.
    group = engines.env["PROACT_ENGINE_GROUP_ID"]
    await stream(topics, events[:CUSTOMERS], rate=2500)
    for _ in range(300):
        if await committed(group, topics, (topics.customers,)) >= CUSTOMERS:
            break
        await asyncio.sleep(0.2)
    producing = asyncio.create_task(stream(topics, events[CUSTOMERS:], rate=2500))
    kills = 0
    await asyncio.sleep(rng.uniform(2, 4))
    engines.start("engine-b", "services.engine", **second)  # a second engine joins: partitions split
    for victim in ("engine", "engine-b", "engine"):
        await asyncio.sleep(rng.uniform(2, 5))
        engines.kill(victim)
        kills += 1
        await asyncio.sleep(rng.uniform(0, 1.5))
        if victim == "engine-b":
            engines.start(victim, "services.engine", **second)
        else:
            engines.start(victim)
    await producing
    await asyncio.sleep(2)
    engines.stop("engine-b")  # scale back to one: its partitions move to the other engine
    for _ in range(600):
        if await committed(group, topics) >= len(events):
            break
        await asyncio.sleep(0.2)
    assert await committed(group, topics) == len(events), engines.log_tail("engine")
    actions: list[dict[str, object]] = []
    for _ in range(60):  # the last ship-by deadlines pass and fire
        actions = [orjson.loads(v) for _, v in await read_all(topics.actions) if v]
        if {a["data"]["context"]["order_id"] for a in actions} >= late:  # type: ignore[index]
            break
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # a duplicate would show up now

    # the changelog's latest value per customer
    state: dict[str, dict[str, object]] = {}
    for key, value in await read_all(topics.engine_state):
        name = key.decode()
        if name.startswith("customer:"):
            if value is None:
                state.pop(name, None)
            else:
                state[name] = orjson.loads(value)
    assert kills == 3
    for c in range(CUSTOMERS):
        doc = state.get(f"customer:c{c}", {})
        assert doc.get("orders", 0) == orders[f"c{c}"], f"c{c}"
        assert doc.get("tickets", 0) == tickets[f"c{c}"], f"c{c}"

    actions = [orjson.loads(v) for _, v in await read_all(topics.actions) if v]
    keys = Counter(a["data"]["idempotency_key"] for a in actions)
    assert [k for k, n in keys.items() if n > 1] == []
    assert {a["data"]["context"]["order_id"] for a in actions} == late

    client = mongo_client(Settings())
    try:
        db = client[engines.env["PROACT_MONGO_DATABASE"]]
        for _ in range(300):
            projected = {d["_id"]: d async for d in db[Collections.CUSTOMERS].find({}, {"orders": 1, "tickets": 1})}
            # the projection is write-behind: wait until it has caught up on both counters
            if all(
                projected.get(f"c{c}", {}).get("orders", 0) == orders[f"c{c}"]
                and projected.get(f"c{c}", {}).get("tickets", 0) == tickets[f"c{c}"]
                for c in range(CUSTOMERS)
            ):
                break
            await asyncio.sleep(0.5)
        for c in range(CUSTOMERS):
            assert projected.get(f"c{c}", {}).get("orders", 0) == orders[f"c{c}"], f"c{c}"
            assert projected.get(f"c{c}", {}).get("tickets", 0) == tickets[f"c{c}"], f"c{c}"
    finally:
        await client.close()
