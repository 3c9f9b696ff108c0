"""The failure model on the real broker: one event that cannot be applied, whatever it raises, is
dead-lettered with its reason and leaves no half-made change; absurd times and internal event types
on an input topic are refused naming the field; and the stream goes on (a late order on every
partition still gets exactly one notice)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord
from pymongo.asynchronous.database import AsyncDatabase

from services.engine.app import Engine, RestoreIncomplete, send_batched
from services.projector.app import Projector
from shared.contract import Event, Topics
from shared.engine import handlers
from shared.engine.state import CUSTOMER, PartitionState
from shared.rules import RuleSet, builtin_rules
from shared.settings import EngineSettings, Settings
from shared.store import Collections, Document
from tests.factories import event, uid
from tests.integration.conftest import isolated_topics, profiles_known
from tests.integration.test_engine import actions_for
from tests.kafka_io import BOOTSTRAP, produce, produce_raw, read

pytestmark = pytest.mark.integration
POISON = "o-poison"


@pytest.fixture(scope="module")
async def failing() -> AsyncIterator[tuple[Engine, Topics]]:
    """An engine on topics of its own, whose handler of ``order.delivered`` breaks half-way for one
    order: it changes the customer, then raises (a bug in a handler, a rule or a model would)."""
    real = handlers.HANDLERS["order.delivered"]

    def half_done(state: PartitionState, e: Event, now: datetime) -> list[Event]:
        if e.data.model_dump().get("order_id") == POISON:
            state.put(CUSTOMER, e.subject, {"customer_id": e.subject, "half": "done"})
            raise ZeroDivisionError("a handler that divides by zero")
        return real(state, e, now)

    handlers.HANDLERS["order.delivered"] = half_done
    settings = Settings()
    try:
        async with isolated_topics(settings.kafka_bootstrap_servers, uid("fm")) as topics:
            engine_settings = EngineSettings(
                topic_prefix=topics.prefix,
                group_id=uid("engine"),
                instance_id=uid("i"),
                poll_timeout_ms=50,
                model_dir=Path("/nonexistent"),
            )
            engine = Engine(engine_settings, rules=RuleSet(builtin_rules()))
            task = asyncio.create_task(engine.run())
            yield engine, topics
            engine.stop()
            await asyncio.wait_for(task, 30)
    finally:
        handlers.HANDLERS["order.delivered"] = real


def dead(records: list[ConsumerRecord], key: str) -> list[dict[str, str]]:
    return [{k: v.decode() for k, v in r.headers} for r in records if r.key == key.encode()]


async def late_orders_get_one_notice_each(engine: Engine, topics: Topics) -> None:
    """A late order for customers on every partition: each gets exactly one delay notice."""
    customers = {}
    while len({hash_partition(c) for c in customers.values()}) < topics.partitions:
        cid = uid("c")
        customers[uid("o")] = cid
    await produce([event("customer.upserted", subject=c, consents={"email": True}) for c in customers.values()], topics)
    await profiles_known(engine, customers.values())
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await produce(
        [event("order.placed", subject=c, order_id=o, promised_ship_by=past) for o, c in customers.items()], topics
    )
    records = await read(
        topics.actions, lambda rs: all(actions_for(rs, o) for o in customers), timeout_s=40, settle_s=2
    )
    assert {o: len(actions_for(records, o)) for o in customers} == dict.fromkeys(customers, 1)


def hash_partition(key: str, partitions: int = 6) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions  # what aiokafka's producer does with a key


async def test_an_event_that_fails_half_way_is_dead_lettered_undone_and_counted(
    failing: tuple[Engine, Topics],
) -> None:
    engine, topics = failing
    cid = uid("c")
    await produce([event("customer.upserted", subject=cid, consents={"email": True})], topics)
    await profiles_known(engine, [cid])
    await produce([event("order.delivered", subject=cid, order_id=POISON)], topics)
    records = await read(topics.dlq(topics.orders), lambda rs: bool(dead(rs, cid)))
    (why,) = dead(records, cid)
    assert why["proact_dlq_error_type"] == "ZeroDivisionError"
    assert "divides by zero" in why["proact_dlq_reason"]
    customer = next(st.get(CUSTOMER, cid) for st in engine.states.values() if st.get(CUSTOMER, cid))
    assert "half" not in customer  # the change made before the error was undone
    changelog = await read(topics.engine_state, lambda rs: any(r.key == f"customer:{cid}".encode() for r in rs))
    assert all(b"half" not in (r.value or b"") for r in changelog if r.key == f"customer:{cid}".encode())
    assert engine.stats.dead_letter_reasons["ZeroDivisionError"] == 1
    await late_orders_get_one_notice_each(engine, topics)


async def test_absurd_times_and_spoofed_internal_events_are_refused_naming_the_field(
    failing: tuple[Engine, Topics],
) -> None:
    engine, topics = failing
    cid = uid("c")
    delivered = event("order.delivered", subject=cid).to_dict()
    placed = event("order.placed", subject=cid).to_dict()
    hostile = {
        "time": {**delivered, "time": "9999-12-31T23:59:59Z"},  # stopped every engine once (OverflowError)
        "data.promised_ship_by": {**placed, "data": {**placed["data"], "promised_ship_by": "2999-01-01T00:00:00Z"}},
        "type": event("timer.fired", subject=cid).to_dict(),  # an internal event written to proact.orders
    }
    for doc in hostile.values():
        await produce_raw(topics.orders, orjson.dumps(doc), cid.encode())
    records = await read(topics.dlq(topics.orders), lambda rs: len(dead(rs, cid)) >= len(hostile))
    assert [why["proact_dlq_field"] for why in dead(records, cid)] == list(hostile)
    await late_orders_get_one_notice_each(engine, topics)


async def test_the_projector_skips_a_record_it_cannot_read_and_projects_the_rest(
    topics: Topics, db: AsyncDatabase[Document]
) -> None:
    good, bad = uid("c"), uid("c")
    await produce_raw(topics.engine_state, b"{}", b"")  # no entity kind in the key: not projected, not a failure
    await produce_raw(topics.engine_state, b"not json", f"customer:{bad}".encode())
    await produce_raw(topics.engine_state, b"[1, 2]", f"customer:{bad}".encode())
    await produce_raw(topics.decisions, b"{broken", good.encode())
    await produce_raw(
        topics.engine_state, orjson.dumps({"customer_id": good, "orders": 1}), f"customer:{good}".encode()
    )
    projector = Projector(EngineSettings(topic_prefix=topics.prefix, group_id=uid("g")), db, flush_interval_s=0.2)
    running = asyncio.create_task(projector.run())
    try:
        for _ in range(150):
            if await db[Collections.CUSTOMERS].find_one({"_id": good}):
                break
            await asyncio.sleep(0.2)
    finally:
        projector.stop()
        await asyncio.wait_for(running, 30)
    assert (await db[Collections.CUSTOMERS].find_one({"_id": good}) or {}).get("orders") == 1
    assert await db[Collections.CUSTOMERS].find_one({"_id": bad}) is None
    assert projector.unreadable["JSONDecodeError"] >= 1  # the decision, and the customer's last value
    assert not running.done() or running.exception() is None


async def test_a_restore_reads_the_changelog_to_its_end_or_fails_never_half(topics: Topics) -> None:
    """Committed state is restored whole, an aborted transaction not at all; a restore that cannot
    reach the end it measured in time raises (the engine starts over) instead of going on with part
    of the state, as 25 empty polls once did."""
    run = uid("restore")
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=uid("txn"))
    await producer.start()
    try:
        committed = [(f"customer:{run}-{i}".encode(), orjson.dumps({"i": i})) for i in range(500)]
        async with producer.transaction():
            await send_batched(producer, topics.engine_state, 3, committed)
        await producer.begin_transaction()
        await send_batched(producer, topics.engine_state, 3, [(f"customer:{run}-aborted".encode(), b"{}")])
        await producer.abort_transaction()
    finally:
        await producer.stop()
    settings = EngineSettings(topic_prefix=topics.prefix, group_id=uid("engine"), model_dir=Path("/nonexistent"))
    (state,) = (await Engine(settings, rules=RuleSet([]))._restore([3])).values()
    assert all(state.get(CUSTOMER, f"{run}-{i}") == {"i": i} for i in range(500))
    assert state.get(CUSTOMER, f"{run}-aborted") is None
    hurried = settings.model_copy(update={"restore_timeout_s": 0.0})  # already past its deadline
    with pytest.raises(RestoreIncomplete, match="records left"):
        await Engine(hurried, rules=RuleSet([]))._restore([3])
