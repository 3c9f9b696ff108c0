"""Write-behind projection of the engine's changelog into MongoDB, for the people and services that
read state (admin, explanations, storefront, trainer).

It also keeps the log of interactions the admin's overview counts: pop-ups shown, accepted or
dismissed (``proact.outcomes``) and callbacks requested (``proact.support``), one document per event,
keyed by the event's id (a record read twice is a duplicate, skipped), with who and when only: a
callback's phone number or address is not copied.

Runs as its own process, ``python -m services.projector``, so that MongoDB's pace never
holds up the engine. It reads ``proact.engine.state`` (read_committed) in its own consumer group, keeps only the latest
value of each entity in a batch, and writes ``customers``, ``orders`` and ``sessions`` with
unordered bulk replaces of at most ``chunk`` documents (FerretDB stalls on 100 or more updates in
one bulk write). Replacing with the latest value is idempotent, so offsets are committed after the
write and a crash at any point only repeats writes. One writer per document: partition N of the
changelog is projected by one consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pymongo import DeleteOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from shared.contract import InvalidEvent, Topics, decode
from shared.contract import events as ev
from shared.settings import EngineSettings
from shared.store import Collections, Document

log = logging.getLogger(__name__)

PROJECTED = {
    "customer": Collections.CUSTOMERS,
    "order": Collections.ORDERS,
    "case": Collections.CASES,
    "session": Collections.SESSIONS,
}
OWNED = (*PROJECTED.values(), Collections.DECISIONS, Collections.INTERACTIONS)
INTERACTION_TYPES = frozenset(
    {"popup.shown", "popup.accepted", "popup.dismissed", "callback.requested", "csat.submitted", "nps.submitted"}
)
# what a survey answer keeps besides who and when: the admin's ratings count them per rule, channel
# and locale (``services/admin/ratings.py``)
ANSWER_FIELDS = ("score", "comment", "action_id", "channel", "locale", "order_id")
# Readers need the recent past, not the whole working state: long lists are cut to their tail,
# which keeps documents small (FerretDB's writes cost in proportion to a document's size).
KEEP_LAST = 20


def _document(value: bytes) -> dict[str, Any]:
    doc = orjson.loads(value)
    if not isinstance(doc, dict):
        raise TypeError(f"a {type(doc).__name__}, not a JSON object")
    return doc


def _summary(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    if kind == "session" and isinstance(doc.get("pages"), list):
        out["page_count"] = len(doc["pages"])
        out["pages"] = doc["pages"][-KEEP_LAST:]
    for field, value in doc.items():
        if field.endswith("_history") and isinstance(value, list):
            out[field] = value[-KEEP_LAST:]
    return out


def _interaction(record: Any) -> Document | None:
    """The interaction log's document for a pop-up outcome, a callback request or a survey answer
    (with its score and comment); None for any other
    event, or a record that is not a valid event (the engine dead-letters those)."""
    try:
        event = decode(record.value, record.headers)
    except InvalidEvent:
        return None
    if event.type not in INTERACTION_TYPES:
        return None
    data = event.data
    doc: Document = {
        "_id": event.id,
        "type": event.type,
        "at": event.time,
        "visitor_id": getattr(data, "visitor_id", None),
        "customer_id": getattr(data, "customer_id", None),
        "rule_id": getattr(data, "rule_id", None),
    }
    if isinstance(data, ev.Answer):
        doc |= {field: getattr(data, field, None) for field in ANSWER_FIELDS}
    return doc


class Projector:
    def __init__(
        self,
        settings: EngineSettings,
        db: AsyncDatabase[Document],
        chunk: int = 50,
        flush_interval_s: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        self.concurrency = concurrency
        self.settings = settings
        self.flush_interval_s = flush_interval_s
        self.db = db
        self.chunk = chunk
        self.topic = Topics.from_settings(settings).engine_state
        self.decisions_topic = Topics.from_settings(settings).decisions
        self.interaction_topics = {Topics.from_settings(settings).outcomes, Topics.from_settings(settings).support}
        self.group_id = f"{settings.group_id}-projector"
        self.written = 0
        self.skipped = 0  # documents MongoDB refused; counted and logged, never retried forever
        self.unreadable: Counter[str] = Counter()  # records that could not be read, by error type
        self.decisions_written = 0
        self.interactions_written = 0
        self.lag: dict[str, int] = {}  # "topic:partition" -> records not yet projected, after the last batch
        # age of the newest state change written, while records are still waiting: "how far behind"
        self.lag_seconds = 0.0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    async def run(self) -> None:
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                self.topic,
                self.decisions_topic,
                *sorted(self.interaction_topics),
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                group_id=self.group_id,
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await consumer.start()
                while not self._stopping.is_set():
                    batch = await self._gather(consumer)
                    if batch:
                        await self.project(batch)
                        await consumer.commit()
                    await self._measure_lag(consumer)
                    if batch and self.total_lag:
                        newest = max(r.timestamp for records in batch.values() for r in records)
                        self.lag_seconds = max(time.time() - newest / 1000, 0.0)
                    elif not self.total_lag:
                        self.lag_seconds = 0.0
            except (KafkaError, PyMongoError) as exc:
                log.warning("projector error, retrying: %s", exc.__class__.__name__)
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    async def _gather(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """Records of up to ``flush_interval_s``: a busy session changes many times a second, and
        only its latest value is written, so a longer window means fewer MongoDB writes."""
        batch: dict[TopicPartition, list[Any]] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_interval_s
        count = 0
        while count < 20000 and not self._stopping.is_set():
            remaining_ms = int((deadline - loop.time()) * 1000)
            if remaining_ms <= 0:
                break
            for tp, records in (await consumer.getmany(timeout_ms=remaining_ms, max_records=5000)).items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
        return batch

    async def project(self, batch: dict[TopicPartition, list[Any]]) -> None:
        latest: dict[tuple[str, str], bytes | None] = {}
        decisions: list[Document] = []
        interactions: list[Document] = []
        for tp, records in batch.items():
            for r in records:
                try:
                    if tp.topic == self.decisions_topic:
                        if r.value:
                            decisions.append(_document(r.value))
                        continue
                    if tp.topic in self.interaction_topics:
                        if (found := _interaction(r)) is not None:
                            interactions.append(found)
                        continue
                    kind, _, entity_id = r.key.decode().partition(":")
                    if kind in PROJECTED:
                        latest[(kind, entity_id)] = r.value
                except Exception as exc:  # one record the projector cannot read is skipped, not the stream
                    self._unreadable(tp, r.offset, exc)
        now = datetime.now(UTC)
        by_collection: dict[str, list[ReplaceOne[Document] | DeleteOne]] = {}
        for (kind, entity_id), value in latest.items():
            try:
                if value is None:
                    op: ReplaceOne[Document] | DeleteOne = DeleteOne({"_id": entity_id})
                else:
                    doc = _summary(kind, _document(value))
                    op = ReplaceOne({"_id": entity_id}, {**doc, "projected_at": now}, upsert=True)
            except Exception as exc:
                self._unreadable(TopicPartition(self.topic, -1), -1, exc, entity=f"{kind}:{entity_id}")
                continue
            by_collection.setdefault(PROJECTED[kind], []).append(op)
        # a few bulk writes in flight at once: each entity is in one of them only (one writer per
        # document still), and MongoDB (or FerretDB) overlaps their work
        slots = asyncio.Semaphore(self.concurrency)

        async def write(collection: str, ops: list[ReplaceOne[Document] | DeleteOne]) -> None:
            async with slots:
                await self._write(collection, ops)

        await asyncio.gather(
            *(
                write(collection, ops[i : i + self.chunk])
                for collection, ops in by_collection.items()
                for i in range(0, len(ops), self.chunk)
            )
        )
        self.written += len(latest)
        if decisions:
            self.decisions_written += await self._append(Collections.DECISIONS, decisions)
        if interactions:
            self.interactions_written += await self._append(Collections.INTERACTIONS, interactions)

    def _unreadable(self, tp: TopicPartition, offset: int, exc: Exception, **where: str) -> None:
        kind = type(exc).__name__
        self.unreadable[kind] += 1
        log.error(
            "record not projected",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": offset,
                "error_type": kind,
                "reason": str(exc)[:200],
                **where,
            },
        )

    async def _append(self, collection: str, docs: list[Document]) -> int:
        """The decision and interaction logs are append-only: inserts, whose ``_id`` (a decision's rule,
        order and cause; an interaction's event id) makes a record read again a duplicate that is
        skipped rather than a second entry."""
        try:
            await self.db[collection].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise
        return len(docs)

    async def _write(self, collection: str, ops: list[ReplaceOne[Document] | DeleteOne]) -> None:
        try:
            await self.db[collection].bulk_write(ops, ordered=False)
            return
        except (BulkWriteError, KeyError) as exc:
            # KeyError: FerretDB answers some failed bulk writes without the counts PyMongo merges
            log.warning("bulk projection failed, writing one by one: %s", str(exc)[:300])
        for op in ops:
            try:
                await self.db[collection].bulk_write([op], ordered=False)
            except (BulkWriteError, KeyError) as exc:
                self.skipped += 1
                log.error("entity not projected", extra={"collection": collection, "error": str(exc)[:300]})

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        # the last stable offset is where a read_committed reader can get to
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is not None:
                self.lag[f"{tp.topic}:{tp.partition}"] = max(end - await consumer.position(tp), 0)
