"""Partition-owned state held in memory and made durable in the compacted changelog topic.

Each input partition N has one ``PartitionState``; its changes are written to partition N of the
changelog in the same Kafka transaction as the consumer offsets, so state, actions and offsets
commit or abort together. Entities are plain JSON-able dicts keyed ``"<kind>:<id>"``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.sessions import SESSION, VISITOR  # the kind names of browsing state, defined once

__all__ = ["CUSTOMER", "ORDER", "SEEN", "SESSION", "TIMER", "TRACE_FIELD", "VISITOR", "Doc", "PartitionState", "Timer"]

Doc = dict[str, Any]

CUSTOMER = "customer"
ORDER = "order"
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


class PartitionState:
    def __init__(self, partition: int, seen_ids_per_key: int = 64) -> None:
        self.partition = partition
        self.seen_ids_per_key = seen_ids_per_key
        self._entities: dict[str, Doc] = {}
        self._timers: dict[str, Timer] = {}
        self._heap: list[tuple[float, str]] = []
        self._changes: dict[str, Doc | None] = {}
        # trace context of the event being applied (set by the engine loop), given to timers it sets
        self.trace_carrier: dict[str, str] | None = None
        self._decisions: list[Doc] = []

    # --- decisions (the "why did this fire, or not" log) --------------------------------------
    def decide(self, decision: Doc) -> None:
        """Record a rule decision; it is published in the batch's transaction with everything else."""
        self._decisions.append(decision)

    def take_decisions(self) -> list[Doc]:
        decisions, self._decisions = self._decisions, []
        return decisions

    # --- entities ---------------------------------------------------------------------------
    def get(self, kind: str, entity_id: str) -> Doc | None:
        return self._entities.get(f"{kind}:{entity_id}")

    def put(self, kind: str, entity_id: str, doc: Doc) -> None:
        key = f"{kind}:{entity_id}"
        self._entities[key] = doc
        self._changes[key] = doc

    def delete(self, kind: str, entity_id: str) -> None:
        key = f"{kind}:{entity_id}"
        if self._entities.pop(key, None) is not None:
            self._changes[key] = None

    def count(self, kind: str) -> int:
        prefix = kind + ":"
        return sum(1 for k in self._entities if k.startswith(prefix))

    # --- de-duplication ---------------------------------------------------------------------
    def seen(self, subject: str, event_id: str) -> bool:
        doc = self._entities.get(f"{SEEN}:{subject}")
        return doc is not None and event_id in doc["ids"]

    def remember(self, subject: str, event_id: str) -> None:
        doc = self._entities.get(f"{SEEN}:{subject}")
        ids = [*doc["ids"], event_id] if doc else [event_id]
        self.put(SEEN, subject, {"ids": ids[-self.seen_ids_per_key :]})

    # --- timers -----------------------------------------------------------------------------
    def schedule(self, timer: Timer) -> None:
        if self.trace_carrier and TRACE_FIELD not in timer.payload:
            timer = Timer(
                timer.timer_id, timer.kind, timer.key, timer.due_at, {**timer.payload, TRACE_FIELD: self.trace_carrier}
            )
        self._timers[timer.timer_id] = timer
        heapq.heappush(self._heap, (timer.due_at.timestamp(), timer.timer_id))
        self.put(TIMER, timer.timer_id, timer.to_doc())

    def cancel(self, timer_id: str) -> bool:
        if self._timers.pop(timer_id, None) is None:
            return False
        self.delete(TIMER, timer_id)
        return True

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
        return changes

    def changelog_records(self) -> Iterator[tuple[bytes, bytes | None]]:
        for key, doc in self.take_changes().items():
            yield key.encode(), None if doc is None else orjson.dumps(doc)

    def restore(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record while rebuilding state after partition assignment."""
        name = key.decode()
        if value is None:
            self._entities.pop(name, None)
            if name.startswith(TIMER + ":"):
                self._timers.pop(name[len(TIMER) + 1 :], None)
            return
        doc = orjson.loads(value)
        self._entities[name] = doc
        if name.startswith(TIMER + ":"):
            timer = Timer.from_doc(doc)
            self._timers[timer.timer_id] = timer

    def finish_restore(self) -> None:
        self._heap = [(t.due_at.timestamp(), t.timer_id) for t in self._timers.values()]
        heapq.heapify(self._heap)
        self._changes = {}
