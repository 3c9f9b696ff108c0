"""Producing to and reading from the real broker in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from shared.contract import EVENT_TYPES, Event, Topics, encode

BOOTSTRAP = "127.0.0.1:9092"


async def produce(events: Iterable[Event], topics: Topics, bootstrap: str = BOOTSTRAP) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            key, value, headers = encode(e)
            await producer.send_and_wait(getattr(topics, EVENT_TYPES[e.type][0]), value, key=key, headers=headers)
    finally:
        await producer.stop()


async def produce_raw(topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [])
    finally:
        await producer.stop()


def committed_reader(topic: str) -> AIOKafkaConsumer:
    """A group-less reader of a whole topic that sees only committed transactions."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


async def read(
    topic: str,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout_s: float = 30.0,
    settle_s: float = 0.0,
) -> list[ConsumerRecord]:
    """Read a topic from the start (read_committed) until ``until(records)`` holds or time runs out;
    then keep reading ``settle_s`` more seconds so that a duplicate arriving late is seen too."""
    consumer = committed_reader(topic)
    await consumer.start()
    records: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    settle_until: float | None = None
    try:
        while loop.time() < deadline and (settle_until is None or loop.time() < settle_until):
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            if settle_until is None and until(records):
                settle_until = loop.time() + settle_s
    finally:
        await consumer.stop()
    return records
