"""Partition-owned state held in memory and made durable in the compacted changelog topic.

Each input partition N has one ``PartitionState``; its changes are written to partition N of the
changelog in the same Kafka transaction as the consumer offsets, so state, actions and offsets
commit or abort together. Entities are plain JSON-able dicts keyed ``"<kind>:<id>"``.

Between batches an entity is held as the JSON bytes written to the changelog, not as a tree of
dicts and lists: bytes are one object that Python's cycle collector never scans. With the state as
objects, each full collection walked all of it (200-250 ms pauses every few seconds with 40,000
entities, the engine's worst latencies; seconds with a big shop's state). A batch works on dicts:
``get`` decodes an entity once per batch, ``put`` keeps the new dict until the changelog is written.
Seen event ids are tuples of strings, which the collector stops tracking too.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.sessions import SESSION, VISITOR  # the kind names of browsing state, defined once

__all__ = [
    "CASE",
    "CUSTOMER",
    "ORDER",
    "SEEN",
    "SESSION",
    "TIMER",
    "TRACE_FIELD",
    "VISITOR",
    "Doc",
    "PartitionState",
    "Timer",
]

Doc = dict[str, Any]
_ABSENT: Any = object()  # "no value here" in the undo log (None is a deleted entity's change)

CUSTOMER = "customer"
ORDER = "order"
CASE = "case"  # a repair or service case
TIMER = "timer"
SEEN = "seen"
# where a timer keeps the W3C trace context of the event that set it, so its firing joins that trace
TRACE_FIELD = "trace"


@dataclass(frozen=True, slots=True)
class Timer:
    timer_id: str
    kind: str
    key: str  # the subject of the events the timer belongs to (customer or visitor id)
    due_at: datetime
    payload: Doc

    def to_doc(self) -> Doc:
        return {
            "timer_id": self.timer_id,
            "kind": self.kind,
            "key": self.key,
            "due_at": self.due_at.isoformat(),
            "payload": self.payload,
        }

    @classmethod
    def from_doc(cls, doc: Doc) -> Timer:
        return cls(doc["timer_id"], doc["kind"], doc["key"], datetime.fromisoformat(doc["due_at"]), doc["payload"])


@dataclass(frozen=True)
class Expiry:
    """How long browsing state and the memory of event ids live without being touched.

    Sessions, visitors and seen event ids come from anyone on the internet and would otherwise grow
    without bound (one visitor id per bot request). An idle one is deleted, with a tombstone on the
    changelog so that compaction shrinks the topic too, and the timers set for an expired visitor
    go with it. Idle time is measured on the engine's clock (when it applied the last event that
    touched the entity; after a restore, when that change was written), never on an event's own
    time, which a client writes. Customers and orders are the shop's records: they do not expire
    here. ``None`` keeps a kind for ever (back-tests, unit tests)."""

    session: timedelta | None = None
    visitor: timedelta | None = None
    seen: timedelta | None = None


class PartitionState:
    def __init__(self, partition: int, seen_ids_per_key: int = 64, expiry: Expiry | None = None) -> None:
        self.partition = partition
        self.seen_ids_per_key = seen_ids_per_key
        expiry = expiry or Expiry()
        ttl = {SESSION: expiry.session, VISITOR: expiry.visitor, SEEN: expiry.seen}
        self._ttl = {kind: t.total_seconds() for kind, t in ttl.items() if t is not None}
        # kind -> entity id -> when last touched (epoch s), oldest first: expiry pops from the front
        self._idle: dict[str, OrderedDict[str, float]] = {kind: OrderedDict() for kind in self._ttl}
        self.now_s = 0.0  # the engine's clock for this batch (set by the engine loop)
        self.expired = 0
        # "<kind>:<id>" -> the committed JSON, or the dict a batch made or read (until the changelog is written)
        self._entities: dict[str, bytes | Doc] = {}
        self._read: dict[str, Doc] = {}  # entities decoded this batch (their bytes stay as they are)
        self._seen: dict[str, tuple[str, ...]] = {}  # subject -> last event ids
        self._timers: dict[str, Timer] = {}
        self._heap: list[tuple[float, str]] = []
        self._changes: dict[str, Doc | None] = {}
        # trace context of the event being applied (set by the engine loop), given to timers it sets
        self.trace_carrier: dict[str, str] | None = None
        self._decisions: list[Doc] = []
        # the values a record's changes replaced, kept between savepoint() and release() (rollback)
        self._undo: dict[str, tuple[Any, Any, Any]] | None = None
        self._undo_seen: dict[str, tuple[str, ...] | None] = {}
        self._undo_timers: dict[str, Timer | None] = {}
        self._undo_decisions = 0
        self._savepoints = 0  # nesting: only the outermost release keeps the changes

    # --- one record at a time ---------------------------------------------------------------
    def savepoint(self) -> None:
        """Start recording what the next record changes, so that ``rollback`` can undo it.

        A record that fails half-way (a rule or a score raising) must leave no partial change: its
        changes would otherwise be written to the changelog with the batch. The handlers copy an
        entity before changing it (``dict(state.get(...))``, new lists for histories), never change
        a stored one in place, so putting back the references replaced is a complete undo.

        Savepoints nest (the engine's encloses the handlers' own): a rollback undoes everything since
        the outermost one, and only the outermost release keeps the changes."""
        self._savepoints += 1
        if self._savepoints > 1:
            return
        self._undo = {}
        self._undo_seen = {}
        self._undo_timers = {}
        self._undo_decisions = len(self._decisions)

    def release(self) -> None:
        """Keep the changes made since ``savepoint`` (once the outermost savepoint is released)."""
        self._savepoints = max(self._savepoints - 1, 0)
        if self._savepoints == 0:
            self._undo = None

    def rollback(self) -> None:
        """Undo every change made since ``savepoint``: entities, seen ids, timers and decisions."""
        undo = self._undo
        self._savepoints = 0
        if undo is None:
            return
        for key, (entity, change, read) in undo.items():
            for store, old in ((self._entities, entity), (self._changes, change), (self._read, read)):
                if old is _ABSENT:
                    store.pop(key, None)
                else:
                    store[key] = old
        for subject, ids in self._undo_seen.items():
            if ids is None:
                self._seen.pop(subject, None)
            else:
                self._seen[subject] = ids
        for timer_id, timer in self._undo_timers.items():
            if timer is None:
                self._timers.pop(timer_id, None)
            else:  # its heap entry is still there: cancelling never removes one
                self._timers[timer_id] = timer
        del self._decisions[self._undo_decisions :]
        self._undo = None

    def _touch(self, key: str) -> None:
        """Keep what ``key`` holds now, the first time a savepoint's record changes it (callers
        check that a savepoint is open: this is on the hot path)."""
        undo = self._undo
        assert undo is not None
        if key not in undo:
            undo[key] = (
                self._entities.get(key, _ABSENT),
                self._changes.get(key, _ABSENT),
                self._read.get(key, _ABSENT),
            )

    # --- decisions (the "why did this fire, or not" log) --------------------------------------
    def decide(self, decision: Doc) -> None:
        """Record a rule decision; it is published in the batch's transaction with everything else."""
        self._decisions.append(decision)

    def take_decisions(self) -> list[Doc]:
        decisions, self._decisions = self._decisions, []
        return decisions

    # --- entities ---------------------------------------------------------------------------
    def get(self, kind: str, entity_id: str) -> Doc | None:
        if kind == SEEN:
            ids = self._seen.get(entity_id)
            return None if ids is None else {"ids": list(ids)}
        key = f"{kind}:{entity_id}"
        value = self._entities.get(key)
        if type(value) is not bytes:
            return value  # type: ignore[return-value]
        doc = self._read.get(key)
        if doc is None:
            doc = self._read[key] = orjson.loads(value)
        return doc

    def put(self, kind: str, entity_id: str, doc: Doc) -> None:
        key = f"{kind}:{entity_id}"
        if self._undo is not None:
            self._touch(key)
        self._entities[key] = doc
        self._changes[key] = doc
        if kind in self._idle:
            self._touched(kind, entity_id, self.now_s)

    def delete(self, kind: str, entity_id: str) -> None:
        key = f"{kind}:{entity_id}"
        if self._undo is not None:
            self._touch(key)
        if self._entities.pop(key, None) is not None:
            self._changes[key] = None

    def ids(self, kind: str) -> list[str]:
        """The ids of every entity of a kind (one pass over the partition's state)."""
        prefix = kind + ":"
        return [k[len(prefix) :] for k in self._entities if k.startswith(prefix)]

    def count(self, kind: str) -> int:
        if kind == SEEN:
            return len(self._seen)
        prefix = kind + ":"
        return sum(1 for k in self._entities if k.startswith(prefix))

    # --- de-duplication ---------------------------------------------------------------------
    def seen(self, subject: str, event_id: str) -> bool:
        ids = self._seen.get(subject)
        return ids is not None and event_id in ids

    def remember(self, subject: str, event_id: str) -> None:
        key = f"{SEEN}:{subject}"
        if self._undo is not None:
            self._touch(key)
            self._undo_seen.setdefault(subject, self._seen.get(subject))
        ids = (*self._seen.get(subject, ()), event_id)[-self.seen_ids_per_key :]
        self._seen[subject] = ids
        self._changes[key] = {"ids": ids}
        if SEEN in self._idle:
            self._touched(SEEN, subject, self.now_s)

    # --- expiry -------------------------------------------------------------------------------
    def _touched(self, kind: str, entity_id: str, at: float) -> None:
        idle = self._idle[kind]
        idle[entity_id] = at
        idle.move_to_end(entity_id)

    def expire(self, now: datetime) -> int:
        """Delete what has been idle longer than its ``Expiry`` (tombstones go to the changelog with
        the batch), with the timers of expired visitors; how many entities went. Costs only what
        expires: each kind is kept in the order it was last touched."""
        now_s = now.timestamp()
        gone_visitors: set[str] = set()
        count = 0
        for kind, idle in self._idle.items():
            limit = now_s - self._ttl[kind]
            while idle:
                entity_id, at = next(iter(idle.items()))
                if at > limit:
                    break
                idle.popitem(last=False)
                count += 1
                if kind == SEEN:
                    if self._seen.pop(entity_id, None) is not None:
                        self._changes[f"{SEEN}:{entity_id}"] = None
                    continue
                self.delete(kind, entity_id)
                if kind == VISITOR:
                    gone_visitors.add(entity_id)
        if gone_visitors:
            for timer in [t for t in self._timers.values() if t.key in gone_visitors]:
                self.cancel(timer.timer_id)
        self.expired += count
        return count

    def live_keys(self) -> int:
        """Entities and seen-id lists held: the live keys of this partition of the changelog."""
        return len(self._entities) + len(self._seen)

    # --- timers -----------------------------------------------------------------------------
    def schedule(self, timer: Timer) -> None:
        if self.trace_carrier and TRACE_FIELD not in timer.payload:
            timer = Timer(
                timer.timer_id, timer.kind, timer.key, timer.due_at, {**timer.payload, TRACE_FIELD: self.trace_carrier}
            )
        if self._undo is not None:
            self._undo_timers.setdefault(timer.timer_id, self._timers.get(timer.timer_id))
        self._timers[timer.timer_id] = timer
        heapq.heappush(self._heap, (timer.due_at.timestamp(), timer.timer_id))
        self.put(TIMER, timer.timer_id, timer.to_doc())

    def cancel(self, timer_id: str) -> bool:
        if self._undo is not None and timer_id in self._timers:
            self._undo_timers.setdefault(timer_id, self._timers[timer_id])
        if self._timers.pop(timer_id, None) is None:
            return False
        self.delete(TIMER, timer_id)
        return True

    def timer(self, timer_id: str) -> Timer | None:
        """The pending timer of that id, if any."""
        return self._timers.get(timer_id)

    def pending_timers(self) -> int:
        return len(self._timers)

    def timers(self) -> list[Timer]:
        """The pending timers, in no particular order."""
        return list(self._timers.values())

    def due(self, now: datetime) -> list[Timer]:
        """Remove and return the timers due at ``now``; cancelled or rescheduled heap entries are skipped."""
        fired: list[Timer] = []
        limit = now.timestamp()
        while self._heap and self._heap[0][0] <= limit:
            due_ts, timer_id = heapq.heappop(self._heap)
            timer = self._timers.get(timer_id)
            if timer is None or timer.due_at.timestamp() != due_ts:
                continue
            del self._timers[timer_id]
            self.delete(TIMER, timer_id)
            fired.append(timer)
        return fired

    # --- changelog --------------------------------------------------------------------------
    def take_changes(self) -> dict[str, Doc | None]:
        """The entities changed since the last call (latest value, or None for deleted)."""
        changes, self._changes = self._changes, {}
        self._read.clear()
        return changes

    def changelog_records(self) -> Iterator[tuple[bytes, bytes | None]]:
        """The batch's changes as changelog records; the entities are held as those bytes again."""
        entities = self._entities
        for key, doc in self.take_changes().items():
            if doc is None:
                yield key.encode(), None
                continue
            value = orjson.dumps(doc)
            if key in entities:  # not a seen-ids record, which lives in its own map
                # a copy of its exact size: orjson's result keeps the 4 KB buffer it was written in
                entities[key] = memoryview(value).tobytes()
            yield key.encode(), value

    def restore(self, key: bytes, value: bytes | None, written_at_s: float = 0.0) -> None:
        """Apply one changelog record while rebuilding state after partition assignment; an entity
        that expires counts its idle time from ``written_at_s``, when the record was written."""
        name = key.decode()
        kind, _, entity_id = name.partition(":")
        if kind in self._idle:
            if value is None:
                self._idle[kind].pop(entity_id, None)
            else:
                self._touched(kind, entity_id, written_at_s)
        if kind == SEEN:
            if value is None:
                self._seen.pop(entity_id, None)
            else:
                self._seen[entity_id] = tuple(orjson.loads(value)["ids"])
            return
        if value is None:
            self._entities.pop(name, None)
            if kind == TIMER:
                self._timers.pop(entity_id, None)
            return
        self._entities[name] = value
        if kind == TIMER:
            timer = Timer.from_doc(orjson.loads(value))
            self._timers[timer.timer_id] = timer

    def finish_restore(self) -> None:
        self._heap = [(t.due_at.timestamp(), t.timer_id) for t in self._timers.values()]
        heapq.heapify(self._heap)
        self._changes = {}
