"""The engine on the real broker: delay notices, dead letters, de-duplication, restart from the changelog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pymongo.asynchronous.database import AsyncDatabase

from services.engine.app import Engine, send_batched
from services.projector.app import Projector
from shared.contract import Event, InvalidEvent, Topics, decode
from shared.settings import EngineSettings, Settings
from shared.store import Collections, Document
from tests.factories import event, uid
from tests.integration.conftest import isolated_topics, profiles_known
from tests.kafka_io import BOOTSTRAP, produce, produce_raw, read

pytestmark = pytest.mark.integration


def engine_settings(prefix: str, group: str, model_dir: Path, database: str) -> EngineSettings:
    """An engine whose rules are the built-in ones, seeded into (and read from) ``database``."""
    return EngineSettings(
        topic_prefix=prefix,
        group_id=group,
        instance_id=uid("i"),
        poll_timeout_ms=50,
        model_dir=model_dir,
        mongo_database=database,
        rules_refresh_s=1.0,
    )


@pytest.fixture(scope="module")
async def engine(topics: Topics, model_registry: Path, base_settings: Settings) -> AsyncIterator[Engine]:
    engine = Engine(engine_settings(topics.prefix, uid("engine"), model_registry, base_settings.mongo_database))
    task = asyncio.create_task(engine.run())
    yield engine
    engine.stop()
    await asyncio.wait_for(task, 30)


def actions_for(records: list[ConsumerRecord], order_id: str) -> list[Event]:
    """The delay notices for one order among the records of the actions topic (which other tests share)."""
    found = []
    for r in records:
        try:
            e = decode(r.value, r.headers)
        except InvalidEvent:
            continue
        if e.data.model_dump()["context"].get("order_id") == order_id:
            found.append(e)
    return found


async def test_order_not_shipped_by_its_promise_gets_exactly_one_notice(engine: Engine, topics: Topics) -> None:
    cid, late, on_time = uid("c"), uid("o"), uid("o")
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    await produce([event("customer.upserted", subject=cid, consents={"email": True})], topics)
    await profiles_known(engine, [cid])
    await produce(
        [
            event("order.placed", subject=cid, order_id=late, promised_ship_by=soon),
            event("order.placed", subject=cid, order_id=on_time, promised_ship_by=soon),
            event("order.shipped", subject=cid, order_id=on_time, estimated_delivery=None),
        ],
        topics,
    )
    records = await read(topics.actions, lambda rs: len(actions_for(rs, late)) >= 1, timeout_s=30, settle_s=3)
    (notice,) = actions_for(records, late)
    assert notice.data.model_dump()["channel"] == "email"
    assert actions_for(records, on_time) == []
    timers = await read(topics.timers, lambda rs: any(r.key == cid.encode() for r in rs))
    assert sum(r.key == cid.encode() for r in timers) == 1  # the shipped order's timer was cancelled


async def test_invalid_event_goes_to_the_dlq_and_the_stream_goes_on(engine: Engine, topics: Topics) -> None:
    cid, order = uid("c"), uid("o")
    await produce_raw(topics.orders, b'{"specversion": "1.0", "truncated', cid.encode())
    good = event("order.placed", subject=cid, order_id=uid("o")).to_dict()
    wrong_type = {**good, "data": {**good["data"], "total": "a lot"}}
    missing = {**good, "data": {"order_id": "o-x"}}
    unknown = {**good, "type": "order.teleported"}
    old_spec = {**good, "specversion": "0.3"}
    huge = {**good, "data": {**good["data"], "note": "x" * 1_000_000}}  # just under the broker's 1 MiB limit
    for doc in (wrong_type, missing, unknown, old_spec, huge):
        await produce_raw(topics.orders, orjson.dumps(doc), cid.encode())
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await produce(
        [
            event("customer.upserted", subject=cid, consents={"push": True}),
            event("order.placed", subject=cid, order_id=order, promised_ship_by=past),
        ],
        topics,
    )
    dead = await read(topics.dlq(topics.orders), lambda rs: sum(r.key == cid.encode() for r in rs) >= 6)
    reasons = [
        (dict(r.headers)["proact_dlq_field"].decode(), dict(r.headers)["proact_dlq_reason"].decode())
        for r in dead
        if r.key == cid.encode()
    ]
    assert [field for field, _ in reasons] == [
        "value",
        "data.total",
        "data.customer_id",
        "type",
        "specversion",
        "value",
    ]
    assert "not valid JSON" in reasons[0][1]
    assert "unknown event type" in reasons[3][1]
    assert "exceeds the limit" in reasons[5][1]
    assert all(dict(r.headers)["proact_dlq_topic"] == topics.orders.encode() for r in dead if r.key == cid.encode())
    records = await read(topics.actions, lambda rs: len(actions_for(rs, order)) >= 1)
    assert len(actions_for(records, order)) == 1


async def test_a_new_engine_instance_restores_state_and_fires_pending_timers(
    base_settings: Settings, tmp_path: Path
) -> None:
    """A timer set by one process and due while no engine runs fires once after the next one starts."""
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("it")) as topics:
        await _restart_while_timer_pending(topics, tmp_path, base_settings.mongo_database)


async def _restart_while_timer_pending(topics: Topics, model_dir: Path, database: str) -> None:
    group = uid("engine")
    cid, order = uid("c"), uid("o")
    first = Engine(engine_settings(topics.prefix, group, model_dir, database))
    task = asyncio.create_task(first.run())
    due = (datetime.now(UTC) + timedelta(seconds=6)).isoformat()
    await produce(
        [
            event("customer.upserted", subject=cid, consents={"email": True}),
            event("order.placed", subject=cid, order_id=order, promised_ship_by=due),
        ],
        topics,
    )
    for _ in range(100):
        if any(st.get("order", order) for st in first.states.values()):
            break
        await asyncio.sleep(0.1)
    first.stop()
    await asyncio.wait_for(task, 30)
    assert first.stats.actions == 0
    await asyncio.sleep(6)  # the deadline passes while no engine runs
    second = Engine(engine_settings(topics.prefix, group, model_dir, database))
    task = asyncio.create_task(second.run())
    try:
        records = await read(topics.actions, lambda rs: len(actions_for(rs, order)) >= 1, settle_s=2)
        assert len(actions_for(records, order)) == 1
        assert second.stats.actions == 1
    finally:
        second.stop()
        await asyncio.wait_for(task, 30)


async def test_browsing_state_with_its_intent_score_reaches_the_changelog(engine: Engine, topics: Topics) -> None:
    visitor, session = uid("v"), uid("s")
    await produce(
        [
            event("session.started", subject=visitor, session_id=session),
            event("page.viewed", subject=visitor, session_id=session, url="/p/1", page_type="product"),
            event("page.viewed", subject=visitor, session_id=session, url="/cart", page_type="cart", duration_s=40),
        ],
        topics,
    )
    key = f"session:{session}".encode()

    def latest(rs: list[ConsumerRecord]) -> dict[str, object] | None:
        values = [orjson.loads(r.value) for r in rs if r.key == key and r.value]
        return values[-1] if values else None

    records = await read(topics.engine_state, lambda rs: len((latest(rs) or {}).get("pages", [])) == 2)  # type: ignore[arg-type]
    state = latest(records)
    assert state is not None
    assert [p["page_type"] for p in state["pages"]] == ["product", "cart"]  # type: ignore[index, union-attr]
    assert 0.0 <= state["intent"]["score"] <= 1.0  # type: ignore[index, call-overload]


async def test_decisions_fired_and_suppressed_reach_the_decision_log(
    engine: Engine, topics: Topics, db: AsyncDatabase[Document]
) -> None:
    consenting, silent = uid("c"), uid("c")
    late = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    events = []
    for cid, consents in ((consenting, {"email": True}), (silent, {})):
        await produce([event("customer.upserted", subject=cid, consents=consents)], topics)
        events += [
            event("order.placed", subject=cid, order_id=f"o-{cid}", promised_delivery_by=late),
            event("order.eta_changed", subject=cid, order_id=f"o-{cid}", estimated_delivery=later),
            event("order.eta_changed", subject=cid, order_id=f"o-{cid}", estimated_delivery=later),
        ]
    await profiles_known(engine, [consenting, silent])
    await produce(events, topics)
    projector = Projector(EngineSettings(topic_prefix=topics.prefix, group_id=uid("g")), db, flush_interval_s=0.2)
    running = asyncio.create_task(projector.run())
    query = {"customer_id": {"$in": [consenting, silent]}}
    try:
        found: list[Document] = []
        for _ in range(150):
            found = [d async for d in db[Collections.DECISIONS].find(query)]
            if len(found) == 4:
                break
            await asyncio.sleep(0.2)
    finally:
        projector.stop()
        await asyncio.wait_for(running, 30)
    mine = sorted((d["outcome"], d["guard"]) for d in found if d["customer_id"] == consenting)
    # one notice per order however many times the ETA slipped; the second slip is recorded as suppressed
    assert mine == [("fired", None), ("suppressed", "reeligibility")]
    fired = next(d for d in found if d["outcome"] == "fired")
    assert (fired["channel"], fired["trigger"]["event_type"], fired["rule_version"]) == (
        "email",
        "order.eta_changed",
        1,
    )
    assert all(c["held"] for c in fired["conditions"])
    assert [(d["outcome"], d["guard"]) for d in found if d["customer_id"] == silent] == [("suppressed", "consent")] * 2


async def test_batched_sends_keep_their_order_and_commit_or_abort_with_the_transaction(topics: Topics) -> None:
    """The changelog goes out as whole record batches: more than one batch's worth keeps its order,
    reaches a read_committed reader only when the transaction commits, and not at all if it aborts."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=uid("txn"), max_batch_size=16384)
    await producer.start()
    run = uid("batched")
    committed = [(f"{run}:{i}".encode(), orjson.dumps({"i": i, "pad": "x" * 200})) for i in range(400)]
    try:
        await producer.begin_transaction()
        await send_batched(producer, topics.engine_state, 5, [(f"{run}:aborted".encode(), b"{}")])
        await producer.abort_transaction()
        async with producer.transaction():
            await send_batched(producer, topics.engine_state, 5, committed)  # ~100 KB: several batches
    finally:
        await producer.stop()
    records = await read(
        topics.engine_state, lambda rs: sum(r.key.startswith(run.encode()) for r in rs) >= 400, settle_s=1.0
    )
    ours = [(r.key, r.value) for r in records if r.key.startswith(run.encode())]
    assert ours == committed
    assert {r.partition for r in records if r.key.startswith(run.encode())} == {5}
