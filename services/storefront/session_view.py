"""The storefront's live view of sessions and pop-up offers, for the decision call.

The decision call must answer in milliseconds, so it reads memory, never the network. The view is
fed twice: by the storefront's own ``POST /v1/events`` (at once, so a decision right after a page
view sees it) and by a group-less consumer of ``proact.browsing`` and ``proact.outcomes`` (what other
replicas received, and the pop-ups they showed). Event ids make the second delivery of an event a
no-op. On start the consumer reads back ``ttl`` of history, so a restarted replica knows the live
sessions again.

Expiry goes by the time the storefront *received* an event (the broker's timestamp of a record it
read, its own clock for one posted to it), never by the time the client wrote into it: a session
dated 2999 by a visitor's browser must not live for ever. Sessions idle longer than ``ttl`` are
dropped, visitors idle longer than ``visitor_ttl``, and the memory of event ids is bounded.
An event that cannot be applied is skipped and counted (``skipped``): the view never stops reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared import sessions
from shared.contract import Event, Topics, decode
from shared.contract import events as ev
from shared.contract.topics import partitions_of

log = logging.getLogger(__name__)
# Applying a busy shop's browsing stream takes the storefront's one thread; it gives way to the
# decision calls every this many events, so a batch of thousands adds at most a few milliseconds
# (not hundreds) to a call that arrives meanwhile.
YIELD_EVERY = 50
Doc = dict[str, Any]


class SessionView:
    def __init__(
        self,
        ttl: timedelta = timedelta(hours=2),
        remember_ids: int = 200_000,
        visitor_ttl: timedelta = timedelta(days=30),
    ) -> None:
        self.ttl = ttl
        self.visitor_ttl = visitor_ttl
        self._entities: dict[str, Doc] = {}
        self._received: dict[str, float] = {}  # key -> when the last event touching it was received (epoch s)
        self._receiving: float = 0.0  # receipt time of the event being applied
        self.skipped: Counter[str] = Counter()  # events not applied, by error type
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember_ids = remember_ids
        self.caught_up = False  # the history of the last ``ttl`` has been read
        self.caught_up_event = asyncio.Event()

    # the store protocol of shared.sessions
    def get(self, kind: str, entity_id: str) -> Doc | None:
        return self._entities.get(f"{kind}:{entity_id}")

    def put(self, kind: str, entity_id: str, doc: Doc) -> None:
        key = f"{kind}:{entity_id}"
        self._entities[key] = doc
        self._received[key] = self._receiving

    def unknown_sessions(self, session_ids: set[str]) -> set[str]:
        """Those of ``session_ids`` that the view holds no session for (new ones)."""
        return {s for s in session_ids if f"session:{s}" not in self._entities}

    def __len__(self) -> int:
        return len(self._entities)

    def apply(self, event: Event, received_at: float | None = None) -> None:
        """Apply one event received at ``received_at`` (epoch seconds; now if not given)."""
        if event.id in self._seen:
            return
        self._receiving = time.time() if received_at is None else received_at
        self._seen[event.id] = None
        if len(self._seen) > self._remember_ids:
            self._seen.popitem(last=False)
        if isinstance(event.data, ev.BrowsingData):
            sessions.apply(self, event)
        elif event.type == "popup.shown" and isinstance(event.data, ev.Outcome) and event.data.visitor_id:
            detail = event.data.detail if isinstance(event.data.detail, dict) else {}
            if session_id := detail.get("session_id"):
                sessions.offered(self, str(session_id), event.data.visitor_id, event.data.rule_id, event.time)

    def expire(self, now: datetime) -> int:
        """Drop sessions and visitors idle (by receipt time) longer than their ttl; how many."""
        sessions_before = (now - self.ttl).timestamp()
        visitors_before = (now - self.visitor_ttl).timestamp()
        old = [
            key
            for key, at in self._received.items()
            if at < (sessions_before if key.startswith("session:") else visitors_before)
        ]
        for key in old:
            self._entities.pop(key, None)
            del self._received[key]
        return len(old)

    async def follow(self, bootstrap_servers: str, topics: Topics) -> None:
        """Read the topics from ``ttl`` ago, then keep up; runs until cancelled."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap_servers,
                group_id=None,
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="latest",
            )
            try:
                await consumer.start()
                await self._read(consumer, topics)
            except KafkaError as exc:
                log.warning("session view: kafka error, reconnecting: %s", exc.__class__.__name__)
                await asyncio.sleep(1)
            finally:
                await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, topics: Topics) -> None:
        partitions = [
            TopicPartition(topic, p)
            for topic in (topics.browsing, topics.outcomes)
            for p in await partitions_of(consumer, topic)
        ]
        consumer.assign(partitions)
        since = int((datetime.now(UTC) - self.ttl).timestamp() * 1000)
        offsets = await consumer.offsets_for_times(dict.fromkeys(partitions, since))
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            found = offsets.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        last_expiry = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            applied = 0
            for records in batch.values():
                for record in records:
                    try:
                        self.apply(decode(record.value, record.headers), record.timestamp / 1000)
                    except Exception as exc:  # the engine dead-letters what is invalid; the view skips it
                        self.skipped[type(exc).__name__] += 1
                        continue
                    applied += 1
                    if applied % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let waiting decision calls run between slices
            if not self.caught_up and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                self.caught_up = True
                self.caught_up_event.set()
                log.info("session view caught up", extra={"entities": len(self)})
            if time.monotonic() - last_expiry > 60:
                self.expire(datetime.now(UTC))
                last_expiry = time.monotonic()
