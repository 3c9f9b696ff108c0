"""The dead letters, over HTTP: what proact refused, why, and a replay.

Every consumer sends a record it cannot process to ``<topic>.dlq`` with headers that say why
(``proact_dlq_error_type``, ``_reason``, ``_field``, ``_rule_id``/``_template_id``) and where it was
(``_topic``, ``_partition``, ``_offset``). This module reads those topics directly from Kafka (they
are the record; nothing is copied into MongoDB):

- ``GET /v1/dead-letters`` lists the newest ones of each topic, without the record's value: a
  refused ``customer.upserted`` carries an address, which the admin shows to nobody. The event's
  type and id are shown when the value is JSON that has them.
- ``POST /v1/dead-letters/replay`` (publisher role) sends one back to the topic it came from, value
  and headers as they were (the ``proact_dlq_*`` headers dropped, ``proact_replayed_from`` added),
  after the cause is fixed: a rule or template withdrawn, a producer corrected. A record that fails
  again goes back to the dead letters with its new reason. Only a proact event topic can be the
  target, whatever the headers say. The replay is in the audit log.
- ``dead_letter_counts`` counts them per day from offsets alone (``offsets_for_times``), without
  reading a record: the overview's figures. That relies on a dead-letter topic's timestamps growing
  with its offsets, which they do: a consumer writes each dead letter when it refuses the record.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, Field

from services.admin.access import Publisher, Viewer
from shared.contract import Topics
from shared.contract.topics import DLQ_HEADER_PREFIX, partitions_of
from shared.settings import AdminSettings
from shared.versioned import audit

router = APIRouter(prefix="/v1", tags=["dead letters"])
REPLAYED_FROM = "proact_replayed_from"
READ_TIMEOUT_S = 10.0  # per topic: a broker slower than this gives a shorter list, not a hung page


def _consumer(settings: AdminSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="proact-admin-dead-letters",
    )


def _summary(dlq: str, record: Any) -> dict[str, Any]:
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}
    why = {k.removeprefix(DLQ_HEADER_PREFIX): v for k, v in headers.items() if k.startswith(DLQ_HEADER_PREFIX)}
    event_type = event_id = None
    try:
        value = orjson.loads(record.value or b"null")
        if isinstance(value, dict):
            event_type, event_id = value.get("type"), value.get("id")
    except orjson.JSONDecodeError:
        pass
    event_type = event_type or headers.get("ce_type")
    event_id = event_id or headers.get("ce_id")
    return {
        "dlq_topic": dlq,
        "partition": record.partition,
        "offset": record.offset,
        "at": datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(),
        "topic": why.get("topic"),
        "error_type": why.get("error_type"),
        "reason": why.get("reason"),
        "field": why.get("field") or None,
        "rule_id": why.get("rule_id"),
        "template_id": why.get("template_id"),
        "event_type": str(event_type)[:100] if event_type else None,
        "event_id": str(event_id)[:200] if event_id else None,
        "replayed_from": headers.get(REPLAYED_FROM),
        "bytes": len(record.value or b""),
    }


async def newest(settings: AdminSettings, per_topic: int) -> list[dict[str, Any]]:
    """The newest ``per_topic`` dead letters of each dead-letter topic, newest first."""
    topics = Topics.from_settings(settings)
    consumer = _consumer(settings)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        # every topic's partitions before the first assignment: once the consumer has one, its
        # metadata covers the assigned topics only
        by_topic = {
            topics.dlq(t): [TopicPartition(topics.dlq(t), p) for p in await partitions_of(consumer, topics.dlq(t))]
            for t in topics.event_topics
        }
        for dlq, partitions in by_topic.items():
            if not partitions:
                continue
            consumer.assign(partitions)
            start = await consumer.beginning_offsets(partitions)
            end = await consumer.end_offsets(partitions)
            remaining = {tp for tp in partitions if end[tp] > start[tp]}
            for tp in remaining:
                consumer.seek(tp, max(start[tp], end[tp] - per_topic))
            records: list[Any] = []
            deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
            while remaining and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=1000)
                for tp, got in batch.items():
                    records += [r for r in got if r.offset < end[tp]]
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            records.sort(key=lambda r: r.timestamp, reverse=True)
            found += [_summary(dlq, r) for r in records[:per_topic]]
    finally:
        await consumer.stop()
    found.sort(key=lambda d: d["at"], reverse=True)
    return found


async def dead_letter_counts(settings: AdminSettings, boundaries: list[datetime]) -> dict[str, list[int]]:
    """Per dead-letter topic, the number of records between consecutive ``boundaries`` (the last
    interval runs to now), from the offsets Kafka finds for those times: nothing is read."""
    topics = Topics.from_settings(settings)
    consumer = _consumer(settings)
    await consumer.start()
    counts: dict[str, list[int]] = {}
    try:
        for source in topics.event_topics:
            dlq = topics.dlq(source)
            partitions = [TopicPartition(dlq, p) for p in await partitions_of(consumer, dlq)]
            if not partitions:
                continue
            end = await consumer.end_offsets(partitions)
            at: list[dict[TopicPartition, int]] = []
            for moment in boundaries:
                found = await consumer.offsets_for_times({tp: int(moment.timestamp() * 1000) for tp in partitions})
                at.append({tp: found[tp].offset if found[tp] is not None else end[tp] for tp in partitions})
            at.append(end)
            counts[source] = [sum(at[i + 1][tp] - at[i][tp] for tp in partitions) for i in range(len(boundaries))]
    finally:
        await consumer.stop()
    return counts


@router.get("/dead-letters")
async def list_dead_letters(
    request: Request, _: Viewer, per_topic: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The newest dead letters of each topic, newest first: where, when, the error and the reason,
    the event's type and id; never the record's value (it may hold personal data)."""
    return await newest(request.app.state.settings, per_topic)


class Replay(BaseModel):
    dlq_topic: str = Field(max_length=300)
    partition: int = Field(ge=0, le=10_000)
    offset: int = Field(ge=0)


@router.post("/dead-letters/replay")
async def replay(request: Request, body: Annotated[Replay, Body()], who: Publisher) -> dict[str, Any]:
    """Send one dead letter back to the topic it came from, as it was; it is processed again."""
    settings: AdminSettings = request.app.state.settings
    topics = Topics.from_settings(settings)
    sources = {topics.dlq(t): t for t in topics.event_topics}
    if body.dlq_topic not in sources:
        raise HTTPException(
            422, {"detail": f"not a dead-letter topic of proact: {body.dlq_topic}", "field": "dlq_topic"}
        )
    tp = TopicPartition(body.dlq_topic, body.partition)
    consumer = _consumer(settings)
    await consumer.start()
    try:
        if body.partition not in await partitions_of(consumer, body.dlq_topic):
            raise HTTPException(404, f"no partition {body.partition} of {body.dlq_topic}")
        consumer.assign([tp])
        start, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        if not start <= body.offset < end:
            raise HTTPException(404, f"no record at offset {body.offset} of {body.dlq_topic}/{body.partition}")
        consumer.seek(tp, body.offset)
        record = None
        for _ in range(10):
            got = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, [])
            if got:
                record = got[0]
                break
    finally:
        await consumer.stop()
    if record is None or record.offset != body.offset:
        raise HTTPException(404, f"no record at offset {body.offset} of {body.dlq_topic}/{body.partition}")
    target = sources[body.dlq_topic]  # the topic this dead-letter topic serves, not what a header says
    origin = f"{body.dlq_topic}:{body.partition}:{body.offset}"
    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_HEADER_PREFIX) and k != REPLAYED_FROM]
    headers.append((REPLAYED_FROM, origin.encode()))
    sent = await send_one(settings, target, record.value, record.key, headers)
    summary = _summary(body.dlq_topic, record)
    await audit(
        request.app.state.db,
        who.who,
        "dead_letter.replayed",
        origin,
        {"error_type": summary["error_type"], "reason": summary["reason"]},
        {"topic": target, "partition": sent.partition, "offset": sent.offset},
    )
    return {"replayed": origin, "to": target, "partition": sent.partition, "offset": sent.offset}


async def send_one(
    settings: AdminSettings, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
) -> RecordMetadata:
    """One record, acknowledged, from a producer of its own: the admin writes to Kafka a few times a
    day (a replay, an agent's record), too seldom to keep a producer open."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def day_boundaries(now: datetime, days: int) -> list[datetime]:
    """Midnight (local to ``now``'s zone) of each of the last ``days`` days, oldest first, today's last."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [midnight - timedelta(days=days - 1 - i) for i in range(days)]
